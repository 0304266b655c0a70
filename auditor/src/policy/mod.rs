//! Pure policy logic: model, parse/validate, generate from observations, import/export formats.
