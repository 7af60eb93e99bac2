defmodule DSPex.Native do
  @moduledoc """
  DSPy embedded in the BEAM, in isolated sessions.

  dspex_native runs Stanford's [DSPy](https://dspy.ai) inside the BEAM through a Rust NIF.
  All Python state lives in sessions (`DSPex.Native.Session`): opaque handles that Elixir
  code owns like any other term, freed in Python when the BEAM garbage-collects them. Two
  sessions can hold programs with the same ID, each has its own LM and settings, and many
  run at once on a pool of Python threads.

      iex> {:ok, a} = DSPex.Native.Session.open(name: "a", lm: {:dummy, [%{"answer" => "from a"}]})
      iex> {:ok, b} = DSPex.Native.Session.open(name: "b", lm: {:dummy, [%{"answer" => "from b"}]})
      iex> for s <- [a, b], do: :ok = DSPex.Native.Session.create_program(s, "prog_1", signature: "question -> answer")
      iex> DSPex.Native.Session.execute(a, "prog_1", %{question: "who?"})
      {:ok, %{"answer" => "from a"}}
      iex> DSPex.Native.Session.execute(b, "prog_1", %{question: "who?"})
      {:ok, %{"answer" => "from b"}}

  This module reports on the runtime as a whole; see `DSPex.Native.Application` for its
  configuration.
  """

  alias DSPex.Native.{Job, Error, NIF}

  @typedoc "Runtime-wide counters; see `stats/1`."
  @type stats :: %{
          status: status(),
          sessions: non_neg_integer() | nil,
          programs: non_neg_integer() | nil,
          refs: non_neg_integer() | nil,
          workers: non_neg_integer(),
          max_workers: non_neg_integer(),
          workers_alive: non_neg_integer(),
          workers_idle: non_neg_integer(),
          queued: non_neg_integer(),
          releases_queued: non_neg_integer(),
          releases_done: non_neg_integer(),
          handles: non_neg_integer(),
          jobs_done: non_neg_integer(),
          jobs_cancelled: non_neg_integer()
        }

  @type status :: :idle | :starting | :ready | {:failed, String.t()}

  @doc """
  Starts the runtime under a supervisor of its own, with `opts` over the application
  config (see `DSPex.Native.Application` for the keys).

  The application starts it by itself unless `config :dspex_native, start: false`; then
  put it in your own tree:

      # config/config.exs
      config :dspex_native, start: false

      # lib/my_app/application.ex
      children = [
        {DSPex.Native, python: "/srv/venv", workers: 8},
        MyApp.Worker
      ]

      Supervisor.start_link(children, strategy: :one_for_one)

  A bad setting, or a Python environment that cannot run (missing, made by another Python,
  without dspy), is `{:error, %DSPex.Native.Error{}}` naming it, and nothing is started.
  Python then boots in the background; `await_ready/1` waits for it. A BEAM runs one
  runtime: a second start is `{:error, {:already_started, pid}}`. Stopping it refuses new
  calls at once and lets running jobs answer; starting it again serves again with the
  interpreter it first started (the same `:python` only).
  """
  @spec start_link(keyword()) :: Supervisor.on_start() | {:error, Error.t()}
  def start_link(opts \\ []), do: DSPex.Native.Runtime.start_link(opts)

  @doc """
  The child spec behind `{DSPex.Native, opts}`; see `start_link/1`.
  """
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}, type: :supervisor}
  end

  @doc """
  Where the runtime is: `:starting` while Python boots and imports DSPy, `:ready`,
  `{:failed, message}` if Python could not start (every call then returns `:not_started`),
  or `:idle` if the application is not running (never started, or stopped).

  ## Examples

      iex> DSPex.Native.status() in [:starting, :ready]
      true
  """
  @spec status() :: status()
  def status do
    case Job.safe(&NIF.status/0) do
      {:error, {_, message, _, _}} -> {:failed, message}
      status -> status
    end
  end

  @doc """
  Waits until the runtime is ready (Python started and DSPy imported) or failed.

  ## Examples

      iex> DSPex.Native.await_ready()
      :ok
  """
  @spec await_ready(timeout()) :: :ok | {:error, Error.t()}
  def await_ready(timeout \\ 30_000) do
    case Job.run({:global_call, ["ping", nil]}, timeout) do
      {:ok, nil} -> :ok
      {:error, _} = error -> error
    end
  end

  @doc """
  Runtime-wide counters.

  * `:sessions`: sessions alive in Python, and `:programs`: DSPy modules alive in Python,
    both counted by weak reference, so they show what Python really holds; `:refs`:
    Python objects held for Elixir as `DSPex.Native.Ref`s;
  * `:handles`: sessions not yet freed on the Rust side (handles the BEAM has not
    collected, plus any held by queued or running jobs);
  * `:workers` (kept ready), `:max_workers`, `:workers_alive` (now, including threads
    the pool added while calls waited), `:workers_idle`, `:queued` (jobs waiting), `:releases_queued` (collected
    sessions and refs waiting to be freed), `:releases_done`, `:jobs_done`, `:jobs_cancelled` (given up on by their
    callers: timed out, or the caller died);
  * `:status`, as `status/0`.

  Options: `gc: true` runs Python's cycle collector first (costs ~15 ms of GIL time),
  `:timeout` (default 15 s). If Python cannot answer (not running, or the queue is full),
  `:sessions`, `:programs` and `:refs` are `nil`.

  ## Examples

      iex> stats = DSPex.Native.stats()
      iex> stats.workers > 0
      true
  """
  @spec stats(keyword()) :: stats()
  def stats(opts \\ []) do
    pool = Job.safe(&NIF.pool_stats/0)
    pool = if is_map(pool), do: pool, else: %{}

    python =
      case Job.run(
             {:global_call, ["stats", %{"gc" => Keyword.get(opts, :gc, false)}]},
             Keyword.get(opts, :timeout, 15_000)
           ) do
        {:ok, counts} -> counts
        {:error, _} -> %{"sessions" => nil, "programs" => nil, "refs" => nil}
      end

    %{
      status: status(),
      sessions: python["sessions"],
      programs: python["programs"],
      refs: python["refs"],
      handles: Map.get(pool, "sessions", 0),
      workers: Map.get(pool, "workers", 0),
      max_workers: Map.get(pool, "max_workers", 0),
      workers_alive: Map.get(pool, "workers_alive", 0),
      workers_idle: Map.get(pool, "workers_idle", 0),
      queued: Map.get(pool, "queued", 0),
      releases_queued: Map.get(pool, "releases_queued", 0),
      releases_done: Map.get(pool, "releases_done", 0),
      jobs_done: Map.get(pool, "jobs_done", 0),
      jobs_cancelled: Map.get(pool, "jobs_cancelled", 0)
    }
  end

  @doc """
  Sends `term` through the pool to Python and back: a round trip that does nothing in
  Python. Useful to measure the bridge itself.

  ## Examples

      iex> DSPex.Native.ping(%{"a" => [1, 2.5, "three", :four, {:five}]})
      {:ok, %{"a" => [1, 2.5, "three", :four, {:five}]}}
  """
  @spec ping(term(), timeout()) :: {:ok, term()} | {:error, Error.t()}
  def ping(term, timeout \\ 5_000), do: Job.run({:global_call, ["ping", term]}, timeout)

  @doc """
  `stats/1` of every connected node that runs `:dspex_native` (this one included), as
  `{node, stats}` pairs.

  ## Examples

      iex> [{node, stats} | _] = DSPex.Native.cluster_stats()
      iex> node == node() and stats.workers > 0
      true
  """
  @spec cluster_stats() :: [{node(), stats()}]
  def cluster_stats do
    for node <- [node() | Node.list()],
        stats = node_call(node, :stats, [[]]),
        is_map(stats),
        do: {node, stats}
  end

  @doc false
  # How busy this node is, read without Python: queued jobs per worker, then sessions.
  def load do
    case Job.safe(&NIF.pool_stats/0) do
      %{"queued" => q, "workers_alive" => w, "sessions" => s} -> {q / max(w, 1), s}
      _ -> nil
    end
  end

  @doc false
  def least_loaded(nodes) do
    loads =
      for node <- Enum.uniq(nodes),
          load = node_call(node, :load, []),
          load != nil,
          do: {load, node}

    case Enum.min(loads, fn -> nil end) do
      {_, node} -> {:ok, node}
      nil -> {:error, Error.new(:nodedown, "no node among #{inspect(nodes)} runs :dspex_native")}
    end
  end

  defp node_call(node, fun, args) when node == node(), do: apply(__MODULE__, fun, args)

  defp node_call(node, fun, args) do
    :erpc.call(node, __MODULE__, fun, args, 5_000)
  catch
    _, _ -> nil
  end
end
