"""A module whose import starts a thread: the zygote refuses to fork after it."""

import threading

threading.Thread(target=threading.Event().wait, daemon=True).start()
