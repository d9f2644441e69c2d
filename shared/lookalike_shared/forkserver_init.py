"""Imported only by the process pool's fork server (pool.make_pool preloads it there).

A service killed outright (SIGKILL, out of memory) cannot shut its pool down. Its fork
server would then live on, orphaned, with every pool worker it forked: ask the kernel to
end the fork server when its parent dies (the workers do the same, see pool.py).
"""

from lookalike_shared.pool import die_with_parent

die_with_parent()
