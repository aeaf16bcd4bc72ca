//! Helpers shared by the end-to-end tests: locating fixtures and built binaries, copying
//! repositories, and computing tree manifests in the format of `fixtures/make_tree.py`.
