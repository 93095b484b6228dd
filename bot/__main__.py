"""`python -m bot`: the same startup sequence as `invoke start`."""

from bot.commands.boundary import run
from bot.startup import start


def main() -> None:
    """Run the startup sequence inside the error boundary."""
    run(start, log_summary=True)


if __name__ == "__main__":
    main()
