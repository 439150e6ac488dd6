"""The model registry of each dataset keyspace: models, their artifacts, aliases.

- `models` is the truth: one row per model (the original demo's id, network, optimizer, upload_date,
  comments, plus metrics, config, lineage and a sha256 per artifact).
- Artifacts (safetensors, never pickle) up to registry.chunk_bytes stay inline in the network /
  optimizer blobs; larger ones go to `model_chunks`, written before the models row.
- models_by_date / models_by_accuracy / models_by_loss / model_classes are derived from each row so
  that plain CQL can answer the registry's questions; `reindex` rebuilds them.
- Aliases (`champion`, ...) live in `aliases`, changed by lightweight transactions with their history.

Modules: write (register, reindex), read (list, best, show, fetch, load_model, export), aliases
(promote, history), metrics (per-class rows), artifacts (safetensors), chunks (large artifacts).

A model reference (`ref`) is a model id (uuid) or an alias name (optionally written `@name`).
"""
