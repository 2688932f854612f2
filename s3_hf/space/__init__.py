"""The synonym space: points -> geometry (geometry), per-class records (records), labels + synonyms + model -> space
(build), the artifact and its files (artifact, files, card and its template) and point-to-space scoring (scoring)."""
