"""String building: f-strings, joins, str methods, formatting of records."""
from bm_common import main


def render_row(i, name, score):
    return f'{i:05d}|{name.upper():<12}|{score:8.3f}|{"*" * (i % 5)}'


def render_table(rows):
    lines = [render_row(i, name, score) for i, (name, score) in enumerate(rows)]
    return '\n'.join(lines)


def slug(text):
    out = []
    for ch in text.lower():
        if ch.isalnum():
            out.append(ch)
        elif out and out[-1] != '-':
            out.append('-')
    return ''.join(out).strip('-')


def work(n):
    names = ['alpha beta', 'Gamma_Delta', 'epsilon zeta eta', 'Theta!', 'iota kappa']
    total = 0
    for k in range(n):
        rows = [(names[(k + j) % 5] + str(j), (k * 31 + j * 7) % 1000 / 7.0) for j in range(20)]
        table = render_table(rows)
        total += len(table) + len(slug(table[:200]))
        total += table.count('|') + len(table.replace('*', '+').split('\n'))
    return total


if __name__ == '__main__':
    main(work, 6000)
