import Config

# This project's own settings; an application using dspex_native as a dependency sets its
# own in its config (see DSPex.Native.Application).
if config_env() == :test do
  # Test-only operations (a worker panic, evaluating Python source) for the failure tests.
  config :dspex_native, test_hooks: true
end
