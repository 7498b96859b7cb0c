# Host fake of the `esp32` module: the classic ESP32's raw_temperature() (deg F); tests add others.
# MIT licence. tests/fakes is on MICROPYPATH only when testing; never shipped to a board.
RAW_F = 120  # what raw_temperature() returns; tests change it


def raw_temperature():
    return RAW_F
