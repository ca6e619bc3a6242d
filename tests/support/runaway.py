"""An isolated worker that never answers: it burns CPU until it is killed (tests only)."""

if __name__ == "__main__":
    import sys

    sys.stdin.read()
    while True:
        pass
