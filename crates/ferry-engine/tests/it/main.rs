//! Integration tests of the engine on real SQLite files.
