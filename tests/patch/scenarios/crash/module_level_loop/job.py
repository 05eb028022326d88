# A script with no functions of its own: its module-level loop looks a country code up and one
# is missing. The crash is in __main__'s module code itself.
CAPITALS = {"fr": "Paris", "de": "Berlin", "it": "Rome"}
visits = []

for code in ["fr", "it", "es", "de"]:
    city = CAPITALS[code]
    visits.append(city)
    print(len(visits), code, city)

print("visited", ", ".join(visits))
