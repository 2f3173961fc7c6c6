# A TCP listener on 127.0.0.1 that never accepts and whose accept queue is already full, so
# the kernel drops further SYNs: a connect to it hangs until the client's connect timeout.
# Prints the port, then exits by itself after argv[1] seconds (tests also kill it).
import socket
import sys
import time

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(0)
port = listener.getsockname()[1]
fillers = []
for _ in range(8):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    fillers.append(s)
print(port, flush=True)
time.sleep(float(sys.argv[1]))
