# Frozen firmware for an ESP32 gateway bridge (`make firmware BOARD=esp32 ROLE=bridge`, docs/GATEWAY.md §10):
# the agent's firmware plus the gateway package, so that the gateway's code runs from flash (loaded from
# .mpy files it would not fit an ESP32's heap). Nodes reach it over ESP-NOW, the master over Wi-Fi.
# MIT licence.
include("manifest.py")
package("mgateway", base_path="../../lib", opt=3)
