# Frozen-build manifest of the agent library, included by boards/<board>/manifest.py.
# MIT licence. Keep the version equal to micromesos.__version__ (tests check it).
metadata(
    version="0.1.0",
    description="Apache Mesos agent for MicroPython microcontrollers",
    license="MIT",
)

# opt=3: asserts and line numbers dropped; the library checks its inputs with exceptions, never assert.
package("micromesos", opt=3)
