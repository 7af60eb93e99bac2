defmodule DSPex.Native.Peer do
  @moduledoc """
  A sidecar BEAM node on this machine for risky Python.

  A NIF shares its node's fate: a segfault or `abort()` inside a Python C extension kills
  the whole node. `start/1` starts another node with OTP's `:peer`, with this node's code
  and the same Python environment, and starts `:dspex_native` there; open sessions on it
  with `DSPex.Native.Session.open(node: node)`. If Python crashes there, only that node
  dies: its callers get `{:error, %DSPex.Native.Error{reason: :nodedown}}` and this node
  lives on.

  This node must be distributed (`Node.start/2`, or `--name`/`--sname`).

      {:ok, node} = DSPex.Native.Peer.start()
      session = DSPex.Native.Session.open!(node: node, lm: {:dummy, [%{"answer" => "x"}]})
  """

  alias DSPex.Native.Error

  @doc """
  Starts a peer node running `:dspex_native` and waits until its Python is ready.

  Options: `:name` (default a unique `dspex_peer_N`), `:env` (extra OS environment,
  `[{"VAR", "value"}]`), `:timeout` (default 60 000 ms). The peer gets this node's code
  path, cookie, `:dspex_native` configuration and Logger levels (its log lines come here),
  and stops when the calling process exits (it is linked to it).

  ## Examples

      {:ok, node} = DSPex.Native.Peer.start(name: :sidecar)
      :ok = DSPex.Native.Peer.stop(node)
  """
  @spec start(keyword()) :: {:ok, node()} | {:error, Error.t()}
  def start(opts \\ []) do
    if Node.alive?() do
      do_start(opts)
    else
      {:error,
       Error.new(:not_started, "this node is not distributed: start it with Node.start/2 first")}
    end
  end

  defp do_start(opts) do
    name =
      Keyword.get_lazy(opts, :name, fn -> :"dspex_peer_#{System.unique_integer([:positive])}" end)

    [_, host] = node() |> Atom.to_string() |> String.split("@", parts: 2)
    longnames = String.contains?(host, ".")
    code_path = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])

    env =
      for {k, v} <- Keyword.get(opts, :env, []),
          do: {String.to_charlist(k), String.to_charlist(v)}

    peer_opts = %{
      name: name,
      host: String.to_charlist(host),
      longnames: longnames,
      # Peers talk to the node that started them, not to each other: fewer connections,
      # and no partition warnings from :global when one of them dies.
      args:
        code_path ++
          [~c"-setcookie", Atom.to_charlist(Node.get_cookie()), ~c"-connect_all", ~c"false"],
      env: env
    }

    timeout = Keyword.get(opts, :timeout, 60_000)

    config = Application.get_all_env(:dspex_native)
    logger = [level: Logger.level(), console: Application.get_env(:logger, :console, [])]

    with {:ok, pid, node} <- :peer.start_link(peer_opts),
         :ok <- :erpc.call(node, __MODULE__, :boot, [config, logger], timeout) do
      :persistent_term.put({__MODULE__, node}, pid)
      {:ok, node}
    else
      {:error, %Error{}} = error ->
        error

      {:error, reason} ->
        {:error, Error.new(:not_started, "the peer did not start: #{inspect(reason)}")}
    end
  end

  @doc false
  # Runs on the peer: same configuration and Logger levels, then wait for Python.
  def boot(config, logger) do
    {:ok, _} = Application.ensure_all_started(:logger)
    Logger.configure(level: logger[:level])
    Logger.configure_backend(:console, Keyword.take(logger[:console], [:level]))
    for {key, value} <- config, do: Application.put_env(:dspex_native, key, value)
    {:ok, _} = Application.ensure_all_started(:dspex_native)
    DSPex.Native.await_ready(:infinity)
  end

  @doc """
  Stops a peer started with `start/1`.

  ## Examples

      {:ok, node} = DSPex.Native.Peer.start()
      DSPex.Native.Peer.stop(node)
  """
  @spec stop(node()) :: :ok
  def stop(node) do
    case :persistent_term.get({__MODULE__, node}, nil) do
      nil ->
        :ok

      pid ->
        :persistent_term.erase({__MODULE__, node})

        try do
          :peer.stop(pid)
        catch
          _, _ -> :ok
        end
    end
  end
end
