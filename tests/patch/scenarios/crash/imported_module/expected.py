import sys
sys.path.insert(0, "patched")
import money
sys.modules["lib.money"] = money
exec(open("job.py").read().replace("from lib.money import", "from money import"))
