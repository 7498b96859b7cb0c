# The 32-bit device model of the gateway bridge (`make devmodel` flavour "bridge", tools/devmodel.py): the
# frozen agent build plus the gateway package, as boards/esp32/bridge_manifest.py freezes it for an ESP32.
# MIT licence.
include("manifest.py")
package("mgateway", base_path="../../lib", opt=3)
