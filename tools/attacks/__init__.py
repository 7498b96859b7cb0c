# Attack cases for tools/attack.py (`make attack`). MIT licence.
