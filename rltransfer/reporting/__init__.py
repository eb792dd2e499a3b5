"""What is made from finished results: the report (tables, pictures, TensorBoard aggregates), publications
with their per-run data, ``rltransfer verify``, and the results index."""
