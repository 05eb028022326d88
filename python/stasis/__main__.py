import sys

from .startup import begin

begin(sys.argv[1:])  # before the CLI's imports: may re-execute this command with the program's hash seed
from .cli import main  # noqa: E402

sys.exit(main())
