defmodule DSPex.Native.Test.TelemetryEvents do
  @moduledoc false
  # Telemetry handlers are global: a test attaches its own, under a unique id, and keeps only
  # the events `keep` accepts (its own session's), so async tests do not see each other's.

  @doc """
  Attaches a handler to `events` that sends `{:telemetry, id, event, measurements,
  metadata}` to the calling process for the events whose metadata `keep` accepts;
  detached when the test ends. Returns the handler id.
  """
  def attach(events, keep \\ fn _ -> true end) do
    id = make_ref()
    :ok = :telemetry.attach_many(id, events, &__MODULE__.handle/4, {self(), id, keep})
    ExUnit.Callbacks.on_exit(fn -> :telemetry.detach(id) end)
    id
  end

  @doc false
  def handle(event, measurements, metadata, {pid, id, keep}) do
    if keep.(metadata), do: send(pid, {:telemetry, id, event, measurements, metadata})
  end

  @doc "A duration in native units as float milliseconds."
  def ms(native), do: System.convert_time_unit(native, :native, :microsecond) / 1000
end
