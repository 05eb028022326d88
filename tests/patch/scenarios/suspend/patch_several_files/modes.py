import stasis.update

stasis.update.add_field("__main__.Leg.mode", lambda leg: "road" if leg.a[1] != leg.b[1] else "ferry")
