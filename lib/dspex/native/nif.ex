defmodule DSPex.Native.NIF do
  @moduledoc false
  # The NIF functions (native/dspex_native/src/nif.rs). None of them takes the GIL or waits
  # for Python: calls that need Python queue a job and return `{:ok, job}`; the answer
  # arrives later as `{tag, {:ok, value} | {:error, error}, queue_ms, python_ms}`. A call whose arguments are
  # too big to decode on a normal scheduler answers `:dirty`: call its `_dirty` twin.
  #
  # Loading never fails the module: if the library cannot be loaded, the stubs stay and
  # `DSPex.Native.Job` turns that into `:not_started` with the loader's message.

  @on_load :load

  @doc false
  def load do
    path = :filename.join(:code.priv_dir(:dspex_native), ~c"native/libdspex_native")

    case :erlang.load_nif(path, 0) do
      :ok ->
        :ok

      {:error, {_, text}} ->
        :persistent_term.put({__MODULE__, :load_error}, "cannot load #{path}.so: #{text}")
        :ok
    end
  end

  @twins %{
    session_open: :session_open_dirty,
    session_call: :session_call_dirty,
    global_call: :global_call_dirty,
    callback_reply: :callback_reply_dirty
  }

  @doc false
  # Runs NIF `name`, or its dirty-scheduler twin when the normal one answers `:dirty`: the
  # one dispatcher for every pair.
  def with_dirty(name, args) when is_map_key(@twins, name) do
    with :dirty <- apply(__MODULE__, name, args), do: apply(__MODULE__, @twins[name], args)
  end

  @doc false
  def load_error, do: :persistent_term.get({__MODULE__, :load_error}, nil)

  def start(_config), do: :erlang.nif_error(:not_loaded)
  def status, do: :erlang.nif_error(:not_loaded)
  def stop, do: :erlang.nif_error(:not_loaded)
  def session_open(_name, _lm, _owner, _tag), do: :erlang.nif_error(:not_loaded)
  def session_open_dirty(_name, _lm, _owner, _tag), do: :erlang.nif_error(:not_loaded)
  def session_call(_session, _op, _args, _tag), do: :erlang.nif_error(:not_loaded)
  def session_call_dirty(_session, _op, _args, _tag), do: :erlang.nif_error(:not_loaded)
  def global_call(_op, _args, _tag), do: :erlang.nif_error(:not_loaded)
  def global_call_dirty(_op, _args, _tag), do: :erlang.nif_error(:not_loaded)
  def session_close(_session), do: :erlang.nif_error(:not_loaded)
  def session_meta(_session), do: :erlang.nif_error(:not_loaded)
  def ref_handle(_session, _number), do: :erlang.nif_error(:not_loaded)
  def job_cancel(_job), do: :erlang.nif_error(:not_loaded)
  def pool_stats, do: :erlang.nif_error(:not_loaded)
  def pool_load, do: :erlang.nif_error(:not_loaded)
  def test_panic, do: :erlang.nif_error(:not_loaded)
  def callback_handle(_fun), do: :erlang.nif_error(:not_loaded)
  def callback_reply(_id, _answer), do: :erlang.nif_error(:not_loaded)
  def callback_reply_dirty(_id, _answer), do: :erlang.nif_error(:not_loaded)
  def remote_handle(_node, _id), do: :erlang.nif_error(:not_loaded)
  def remote_handle_info(_handle), do: :erlang.nif_error(:not_loaded)
  def protocol, do: :erlang.nif_error(:not_loaded)
  def events_subscribe(_pid, _lm_calls), do: :erlang.nif_error(:not_loaded)
  def events_take, do: :erlang.nif_error(:not_loaded)
end
