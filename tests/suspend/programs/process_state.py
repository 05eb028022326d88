"""Process state a program sets up: atexit functions (with arguments; as a decorator), a signal
handler and an ignored signal, a finished subprocess.Popen result."""
import atexit, signal, os, subprocess, sys
log = []
def bye(tag, extra=""):
    print("atexit", tag, extra, len(log))
atexit.register(bye, "first", extra="kw")
@atexit.register
def second():
    print("atexit second")
got = []
def on_hup(signum, frame):
    got.append(signum)
signal.signal(signal.SIGHUP, on_hup)
signal.signal(signal.SIGUSR2, signal.SIG_IGN)
done = subprocess.run(["true"])
for i in range(30):
    log.append(i)
    if i % 10 == 9:
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGUSR2)
        print(i, got, done.returncode)
