import __main__

# Module-level statements that rebind an existing name do not run in a --source patch (the
# program's values stay): the new table entry is put in by this update module.
__main__.FACTORS["mi"] = 1609.344
