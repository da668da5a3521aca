"""The thin `ctl` command line: parse, call the application layer, print."""
