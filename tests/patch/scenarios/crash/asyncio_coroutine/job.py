# An asyncio pipeline: a fetcher coroutine looks a key up in a table and one key is missing.
import asyncio

TABLE = {"a": 1, "b": 2, "d": 4}


async def fetch(key):
    await asyncio.sleep(0)
    return TABLE[key]


async def main():
    total = 0
    for key in "abcd":
        value = await fetch(key)
        total += value
        print("fetched", key, value, total)
    return total


print("total", asyncio.run(main()))
