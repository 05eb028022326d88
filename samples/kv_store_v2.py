"""An update file for kv_store.py (`stasis restart PID --patch kv_store_v2.py`, or
`stasis ctl PID apply kv_store_v2.py` on the live process): replies name the new version."""
from stasis.update import redefine


def server_name():
    return "kv-store 2"


redefine("__main__.server_name", server_name)
