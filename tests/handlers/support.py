"""What the handler tests share: a round trip through a snapshot in memory, and an optional
library (numpy, pandas) imported when installed, its absence said once on stderr."""
import importlib
import sys
from types import ModuleType
from typing import Any, Optional

import stasis


def rt(x: Any) -> Any:
    """x through stasis.dumps and stasis.loads."""
    return stasis.loads(stasis.dumps(x))


def optional(module: str, test: str) -> Optional[ModuleType]:
    """`module` imported, or None with the reason on stderr (make test installs python3-<module>)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        sys.stderr.write(f"{test}: {module} is not installed (apt install python3-{module}): skipped\n")
        return None
