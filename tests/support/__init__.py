"""What the tests share: one module per kind of helper, imported by name; test files never import each other."""
