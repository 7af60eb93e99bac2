import Config

# This project's own settings; an application using dspex_native as a dependency sets its
# own in its config (see DSPex.Native.Application).
if config_env() == :test do
  # Test-only operations (a worker panic, evaluating Python source) for the failure tests.
  config :dspex_native, test_hooks: true

  # A passing run prints only the test runners' lines: the runtime's info lines (Python
  # ready, LM client stack warm) stay off the console. Logger's level stays :debug, so
  # ExUnit.CaptureLog still sees every level.
  config :logger, :console, level: :warning
end
