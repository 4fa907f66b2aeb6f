"""Knowledge indexing: load, clean, chunk, embed, store and search policy documents."""
