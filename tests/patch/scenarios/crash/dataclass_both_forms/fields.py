import stasis.update

# Orders made before the patch get their note (those made after would set it themselves).
stasis.update.add_field("__main__.Order.note", lambda o: "fast" if o.oid % 2 else "normal")
