# Host fake of `network` (WLAN station): associates with the SSIDs listed in `networks`, after
# `polls` isconnected() calls. MIT licence. tests/fakes is on MICROPYPATH only when testing.
STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_WRONG_PASSWORD = 202
STAT_NO_AP_FOUND = 201
STAT_GOT_IP = 1010

networks = {}        # ssid -> password the fake access point accepts
address = "127.0.0.2"  # what ipconfig("addr4") reports once associated (loopback: tests stay local);
                       # a test changes it to play a DHCP lease moving to another address
polls = 2            # isconnected() calls before an accepted connect completes


class WLAN:
    IF_STA = 0
    IF_AP = 1
    made = []

    def __init__(self, interface=0):
        self.interface = interface
        self._active = False
        self._status = STAT_IDLE
        self._left = 0
        self.connects = 0
        WLAN.made.append(self)

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
        return None

    def connect(self, ssid, key=None):
        if not self._active:
            raise OSError("WLAN not active")
        self.connects += 1
        if ssid not in networks:
            self._status = STAT_NO_AP_FOUND
        elif networks[ssid] != key:
            self._status = STAT_WRONG_PASSWORD
        else:
            self._status = STAT_CONNECTING
            self._left = polls

    def disconnect(self):
        self._status = STAT_IDLE

    def drop(self):
        """The access point went away (or kicked us): association lost, as the driver reports it."""
        self._status = STAT_NO_AP_FOUND

    def isconnected(self):
        if self._status == STAT_CONNECTING:
            self._left -= 1
            if self._left <= 0:
                self._status = STAT_GOT_IP
        return self._status == STAT_GOT_IP

    def status(self, param=None):
        return self._status

    def ipconfig(self, key):
        if key != "addr4":
            raise ValueError("unknown config param")
        if self._status != STAT_GOT_IP:
            return ("0.0.0.0", "0.0.0.0")
        return (address, "255.255.255.0")
