"""Teaching views: the stage graph and its pictures, build reports, and views of stored images."""
