import stasis.update

stasis.update.map_frame("__main__.accumulate", rename={"acc": "total", "n": "count"},
                        init={"biggest": lambda f: max(f["values"][:f["n"]])})
