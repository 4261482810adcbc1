"""How RUN steps execute: the Executor protocol, the emulated and fake executors, the chroot sandbox."""
