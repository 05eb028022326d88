class Node:
    def __init__(self, name):
        self.name = name
        self.edges = []

    def link(self, other):
        self.edges.append(other)
        other.edges.append(self)


nodes = [Node("n%d" % i) for i in range(8)]
for i in range(8):
    nodes[i].link(nodes[(i * 3 + 1) % 8])
    degree = [len(n.edges) for n in nodes]
    print(i, degree, nodes[i].edges[-1].name)
print(nodes[0].edges[0].edges[0] is nodes[0] or nodes[0].edges[0].edges[-1] is nodes[0])
