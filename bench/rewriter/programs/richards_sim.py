"""Object-heavy simulation: a scheduler of task objects with method calls and state."""
from bm_common import main


class Packet:
    __slots__ = ('link', 'ident', 'kind', 'datum', 'data')

    def __init__(self, link, ident, kind):
        self.link = link
        self.ident = ident
        self.kind = kind
        self.datum = 0
        self.data = [0] * 4

    def append_to(self, lst):
        self.link = None
        if lst is None:
            return self
        p = lst
        while p.link is not None:
            p = p.link
        p.link = self
        return lst


class Task:
    def __init__(self, ident, priority, sched):
        self.ident = ident
        self.priority = priority
        self.sched = sched
        self.queue = None
        self.count = 0

    def receive(self, packet):
        self.queue = packet.append_to(self.queue)

    def take(self):
        p = self.queue
        if p is not None:
            self.queue = p.link
        return p

    def run(self, packet):
        raise NotImplementedError


class Worker(Task):
    def run(self, packet):
        if packet is None:
            return None
        self.count += 1
        packet.datum = (packet.datum + self.count * 7) % 1000
        for i in range(4):
            packet.data[i] = (packet.data[i] + packet.datum + i) % 256
        target = self.sched.task((self.ident + 1) % len(self.sched.tasks))
        return self.sched.send(packet, target)


class Handler(Task):
    def run(self, packet):
        if packet is None:
            return None
        self.count += sum(packet.data) % 7
        return self.sched.send(packet, self.sched.task(0))


class Scheduler:
    def __init__(self):
        self.tasks = []
        self.hold_count = 0

    def add(self, cls, priority):
        t = cls(len(self.tasks), priority, self)
        self.tasks.append(t)
        return t

    def task(self, ident):
        return self.tasks[ident]

    def send(self, packet, target):
        target.receive(packet)
        return target

    def schedule(self, steps):
        for step in range(steps):
            for t in sorted(self.tasks, key=lambda t: -t.priority):
                p = t.take()
                if p is None:
                    self.hold_count += 1
                    continue
                t.run(p)
        return sum(t.count for t in self.tasks) + self.hold_count


def work(n):
    s = Scheduler()
    for i in range(6):
        s.add(Worker if i % 3 else Handler, i)
    for i in range(30):
        s.tasks[i % 6].receive(Packet(None, i, i % 3))
    return s.schedule(n)


if __name__ == '__main__':
    main(work, 120000)
