"""Recursive dispatch: a small JSON-like serializer and parser of nested data."""
from bm_common import main


def dump(obj, out):
    if isinstance(obj, dict):
        out.append('{')
        first = True
        for k, v in obj.items():
            if not first:
                out.append(',')
            first = False
            dump(str(k), out)
            out.append(':')
            dump(v, out)
        out.append('}')
    elif isinstance(obj, (list, tuple)):
        out.append('[')
        for i, v in enumerate(obj):
            if i:
                out.append(',')
            dump(v, out)
        out.append(']')
    elif isinstance(obj, str):
        out.append('"' + obj.replace('"', '\\"') + '"')
    elif obj is None:
        out.append('null')
    else:
        out.append(repr(obj))


def parse(s, i=0):
    ch = s[i]
    if ch == '{':
        d = {}
        i += 1
        while s[i] != '}':
            k, i = parse(s, i)
            v, i = parse(s, i + 1)
            d[k] = v
            if s[i] == ',':
                i += 1
        return d, i + 1
    if ch == '[':
        lst = []
        i += 1
        while s[i] != ']':
            v, i = parse(s, i)
            lst.append(v)
            if s[i] == ',':
                i += 1
        return lst, i + 1
    if ch == '"':
        j = s.index('"', i + 1)
        return s[i + 1:j], j + 1
    j = i
    while j < len(s) and s[j] not in ',]}':
        j += 1
    tok = s[i:j]
    return (None if tok == 'null' else float(tok) if '.' in tok else int(tok)), j


def make(depth, k):
    if depth == 0:
        return [k, k * 1.5, 'leaf%d' % k, None]
    return {f'key{i}': make(depth - 1, k * 3 + i) for i in range(3)}


def work(n):
    total = 0
    for k in range(n):
        out = []
        dump(make(4, k), out)
        text = ''.join(out)
        obj, _ = parse(text)
        total += len(text) + len(obj)
    return total


if __name__ == '__main__':
    main(work, 450)
