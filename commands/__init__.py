"""The `fer-mine` commands, one module per area. Commands only parse options, call the library
and print: shared options are declared once (options.py), printing lives in output.py."""
