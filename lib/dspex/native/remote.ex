defmodule DSPex.Native.Remote do
  @moduledoc """
  Sessions that live on other nodes of a BEAM cluster.

  Every node running `:dspex_native` runs this process. A session opened with
  `DSPex.Native.Session.open(node: node)` lives on `node`, held here; the caller gets a
  `%DSPex.Native.Session{node: node}` whose handle is a small resource on the caller's node.
  Calls travel with `:erpc`; inputs and outputs are plain terms.

  A remote session is closed (and freed in Python) when:

  * the caller's last handle is garbage-collected (the handle's destructor tells this
    process, which tells the session's node, without blocking);
  * its `owner:` exits (a monitor across nodes);
  * the connection between the two nodes is lost;
  * it is closed explicitly.

  `DSPex.Native.Py` works on remote sessions too: the Python objects stay on the session's
  node, held here for the caller's node; the caller's `%DSPex.Native.Ref{}`s hold handles
  whose collection (or the loss of the connection) releases them. Elixir functions passed
  to a remote session run on its node, so their module must be loaded there.

  A call to a session whose node is down or unreachable returns
  `{:error, %DSPex.Native.Error{reason: :nodedown}}` within its timeout. Sessions that lived
  on a lost node are gone with it.
  """

  use GenServer

  alias DSPex.Native.{Args, Error, LM, NIF, Ref, Requests, Session}

  import DSPex.Native.Args, only: [invalid: 1]

  @table :dspex_native_remote_sessions

  @doc false
  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  # -- on the caller's node ------------------------------------------------------------------

  @doc false
  # The node `Session.open/1`'s `node:`/`placement:` options choose.
  def placement(opts) do
    case {Keyword.get(opts, :node), Keyword.get(opts, :placement, :local)} do
      {node, _} when is_atom(node) and node != nil ->
        {:ok, node}

      {nil, :local} ->
        {:ok, node()}

      {nil, :least_loaded} ->
        DSPex.Native.least_loaded([node() | Node.list()])

      {nil, {:nodes, [_ | _] = nodes}} ->
        DSPex.Native.least_loaded(nodes)

      {nil, other} ->
        {:error,
         invalid(
           "placement must be :local, :least_loaded or {:nodes, [node]}, got #{inspect(other)}"
         )}

      {other, _} ->
        {:error, invalid("node must be a node name, got #{inspect(other)}")}
    end
  end

  @doc false
  # Opens a session on `node` and returns the caller's handle to it. What can be checked
  # here is, so a bad option costs no round trip.
  def open(node, opts, default_timeout) do
    with {:ok, _} <- LM.spec(Keyword.get(opts, :lm)),
         {:ok, timeout} <- Args.timeout(opts, default_timeout),
         :ok <- remote_owner(Keyword.get(opts, :owner)) do
      open_there(node, opts, timeout)
    end
  end

  defp remote_owner(owner) when is_pid(owner) or owner == nil, do: :ok
  defp remote_owner(_), do: {:error, invalid("owner must be a pid")}

  defp open_there(node, opts, timeout) do
    {owner, opts} = Keyword.pop(opts, :owner)

    case erpc(node, :open_here, [opts, node(), owner], timeout) do
      {:ok, {id, session_id, name}} ->
        handle = NIF.remote_handle(Atom.to_string(node), id)
        {:ok, %Session{resource: handle, id: session_id, name: name, node: node}}

      {:ok, {:error, _} = error} ->
        error

      {:error, _} = error ->
        error
    end
  end

  @doc false
  # Runs `Requests.fun(session, args...)` on the session's node (`Requests.fun(args...)`
  # for the functions whose first argument is a ref). Refs cross as keys of the session's
  # node's table: the caller's copies hold handles whose collection releases them there.
  def call(%Session{node: node, resource: handle} = session, fun, args, timeout) do
    {_node, id} = NIF.remote_handle_info(handle)

    case erpc(node, :apply_here, [id, fun, args, node()], timeout) do
      {:ok, result} -> wrap_refs(session, result)
      {:error, _} = error -> error
    end
  end

  # The :erpc timeout leaves room for the call's own timeout to fire on the far side first.
  defp erpc(node, fun, args, timeout) do
    erpc_timeout = if timeout == :infinity, do: :infinity, else: timeout + 2_000

    try do
      {:ok, :erpc.call(node, __MODULE__, fun, args, erpc_timeout)}
    catch
      :error, {:erpc, :noconnection} ->
        {:error, Error.new(:nodedown, "node #{node} is down or unreachable")}

      :error, {:erpc, :timeout} ->
        {:error, Error.new(:timeout, "node #{node} did not answer within #{erpc_timeout} ms")}

      :exit, {{:nodedown, _}, _} ->
        {:error, Error.new(:nodedown, "node #{node} went down during the call")}

      :error, {:exception, :undef, _} ->
        {:error, Error.new(:not_started, "node #{node} does not run :dspex_native")}

      kind, reason ->
        {:error, Error.new(:nodedown, "calling node #{node} failed: #{inspect({kind, reason})}")}
    end
  end

  # -- on the session's node ------------------------------------------------------------------

  @doc false
  def open_here(opts, caller_node, owner) do
    with {:ok, session} <- Session.open(opts) do
      GenServer.call(__MODULE__, {:hold, session, caller_node, owner})
    end
  end

  @doc false
  # A stream's job on the session's node (spawned from the caller's node); pieces and the
  # result go to the caller's consumer.
  def stream_here(id, args, timeout, {consumer, ref} = to) do
    case :ets.lookup(@table, id) do
      [{^id, %Session{} = session}] ->
        DSPex.Native.Streaming.produce(session, args, timeout, to)

      _ ->
        send(
          consumer,
          {ref, {:result, {:error, Error.new(:closed, "the remote session is closed")}}}
        )
    end
  end

  @ref_first [:py_method, :py_attr, :py_set_attr]

  @doc false
  def apply_here(id, fun, args, caller_node) do
    case :ets.lookup(@table, id) do
      [{^id, %Session{} = session}] ->
        args = import_refs(args)
        args = if fun in @ref_first, do: args, else: [session | args]
        export_refs(apply(Requests, fun, args), caller_node)

      _ ->
        {:error, Error.new(:closed, "the remote session is closed")}
    end
  end

  # A caller's ref to an object held here, as the local ref it stands for.
  defp import_refs(args) do
    Ref.map_terms(args, fn
      %Ref{session: %Session{node: node}, id: key} = ref when node == node() ->
        case :ets.lookup(@table, key) do
          [{^key, %Ref{} = local}] -> {:ok, local}
          _ -> {:ok, %{ref | session: %{ref.session | node: :released}}}
        end

      _ ->
        :descend
    end)
  end

  # Local refs in a result, held here for the caller's node, as `{:"$dspex_remote_ref", key, type}`.
  defp export_refs(result, caller_node) do
    Ref.map_terms(result, fn
      %Ref{type: type} = ref ->
        {:ok,
         {:"$dspex_remote_ref", GenServer.call(__MODULE__, {:hold_ref, ref, caller_node}), type}}

      _ ->
        :descend
    end)
  end

  # On the caller's node: the markers as refs whose handles release the objects there.
  defp wrap_refs(session, result) do
    Ref.map_terms(result, fn
      {:"$dspex_remote_ref", key, type} ->
        handle = NIF.remote_handle(Atom.to_string(session.node), key)
        {:ok, %Ref{session: session, id: key, type: type, handle: handle}}

      _ ->
        :descend
    end)
  end

  @impl true
  def init(nil) do
    :ets.new(@table, [:named_table, :public, read_concurrency: true])
    :ok = :net_kernel.monitor_nodes(true)
    {:ok, %{next: 1, owners: %{}, by_node: %{}}}
  end

  @impl true
  def handle_call({:hold, session, caller_node, owner}, _from, state) do
    id = state.next
    :ets.insert(@table, {id, session})

    owners =
      if is_pid(owner),
        do: Map.put(state.owners, Process.monitor(owner), id),
        else: state.owners

    by_node = Map.update(state.by_node, caller_node, [id], &[id | &1])

    {:reply, {id, session.id, session.name},
     %{state | next: id + 1, owners: owners, by_node: by_node}}
  end

  def handle_call({:hold_ref, ref, caller_node}, _from, state) do
    id = state.next
    :ets.insert(@table, {id, ref})
    by_node = Map.update(state.by_node, caller_node, [id], &[id | &1])
    {:reply, id, %{state | next: id + 1, by_node: by_node}}
  end

  @impl true
  # A handle on this node was collected: tell the session's node.
  def handle_info({:dspex_remote_dropped, node, id}, state) do
    send({__MODULE__, String.to_atom(node)}, {:drop, id})
    {:noreply, state}
  end

  def handle_info({:drop, id}, state), do: {:noreply, close(id, state)}

  def handle_info({:DOWN, ref, :process, _pid, _reason}, state) do
    case Map.pop(state.owners, ref) do
      {nil, _} -> {:noreply, state}
      {id, owners} -> {:noreply, close(id, %{state | owners: owners})}
    end
  end

  # The caller's node is gone: so are its handles.
  def handle_info({:nodedown, node}, state) do
    {ids, by_node} = Map.pop(state.by_node, node, [])
    {:noreply, Enum.reduce(ids, %{state | by_node: by_node}, &close/2)}
  end

  def handle_info({:nodeup, _node}, state), do: {:noreply, state}

  defp close(id, state) do
    case :ets.take(@table, id) do
      [{^id, %Session{} = session}] -> Session.close(session)
      # A ref held for another node: dropping it here lets its handle be collected.
      _ -> :ok
    end

    state
  end
end
