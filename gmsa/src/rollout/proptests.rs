//! Property tests of the engine (placeholder).
