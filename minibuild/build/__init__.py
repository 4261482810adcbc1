"""Building images: context, COPY, RUN executors, tree diffs and root filesystems."""
