# A recursive method (tree sizes) is on the stack four times when the program is suspended; its
# code changes (lines inserted before and after the recursive call), and every frame moves.
import stasis


class Node:
    def __init__(self, name, *kids):
        self.name, self.kids = name, list(kids)

    def size(self, depth=0):
        total = 1
        for k in self.kids:
            total += k.size(depth + 1)
        if self.name == "leaf3":
            stasis.suspend()
        print("  " * depth + self.name, total)
        return total


tree = Node("root", Node("a", Node("b", Node("leaf3"), Node("leaf4")), Node("c")), Node("d"))
print("size", tree.size())
