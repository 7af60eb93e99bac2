defmodule DSPex.Native.Session do
  @moduledoc """
  An isolated DSPy workspace: its own programs, its own LM and settings, its own counters.

  A session is a term like any other. Pass it to other processes, keep it in ETS or a
  GenServer's state; when the last reference is gone and the BEAM garbage-collects it, its
  Python objects are freed by the worker pool. `close/1` frees them at once.

  Two sessions can both hold a program called `"prog_1"`: IDs are per session, and so is
  everything else. Many calls, on one session or many, run at once on the pool's Python
  threads.

  ## Example

      iex> {:ok, session} = DSPex.Native.Session.open(name: "docs", lm: {:dummy, [%{"answer" => "Paris"}]})
      iex> :ok = DSPex.Native.Session.create_program(session, "qa", signature: "question -> answer")
      iex> DSPex.Native.Session.execute(session, "qa", %{question: "Capital of France?"})
      {:ok, %{"answer" => "Paris"}}

  ## LM specs

  * `nil`: no LM (executing gives `:no_lm`);
  * `"openai/gpt-4o-mini"`: a model string for `dspy.LM` (provider keys come from the
    environment as usual);
  * `{"openai/gpt-4o-mini", api_key: ..., api_base: ..., temperature: ...}`: options
    passed on to `dspy.LM`, except `cache:` (below);
  * `{:dummy, answers}`: DSPy's `DummyLM`, for tests and offline work. A list of output maps
    is consumed one per call; a map from a substring of the prompt to an output map answers
    whichever prompt contains the substring (substrings are tried in the map's order, which
    for an Elixir map is sorted, so `""` — matching everything — comes first).

  API keys stay in Python: they never appear in `inspect/1`, `info/1`, errors or logs.

  `cache:` says where a real LM's answers are cached. Every cache key includes the LM's
  endpoint (`api_base`) and a hash of its credentials, so different servers or keys never
  share an answer. Nothing is written to disk unless you name a directory.

  * `true` or `:session` (the default): in this session only, in memory (its last 100
    answers), freed with the session;
  * `:shared`: in one in-memory cache shared by every session that also says `:shared`;
  * `{:disk, directory}`: on disk in `directory` (shared by the sessions that name it);
  * `false`: not cached.

  ## Signatures

  A DSPy string signature, `"question -> answer"` or `"context, question -> answer: int"`,
  or a structure:

      %{inputs: [question: "what to answer"], outputs: [answer: "a short answer"],
        instructions: "Answer briefly."}

  (a map or keyword; descriptions are optional: `inputs: [:question]`). Signatures are data,
  never code: a string signature is parsed without evaluating anything, and its types may
  only be builtins (`str`, `int`, `float`, `bool`, `list[...]`, `dict[...]`, `tuple[...]`,
  `X | None`), `typing` (`Any`, `List`, `Dict`, `Tuple`, `Optional`, `Union`,
  `Literal[...]`) and DSPy's types (`dspy.Image`, `dspy.History`, `dspy.Tool`,
  `dspy.ToolCalls`, `dspy.Code["python"]`, `dspy.Audio`). Anything else, such as a quoted
  type, is `:invalid_signature`.

  Field names that DSPy's modules take as control arguments are reserved and refused with
  `:invalid_signature`: `signature`, `demos`, `config`, `lm`, `prediction`, `new_signature`
  and `completed` everywhere; `reasoning` in `:chain_of_thought`; `reasoning`, `max_iters`,
  `trajectory`, `next_thought`, `next_tool_name` and `next_tool_args` in `:react`.

  ## Timeouts and cancellation

  Every function that talks to Python takes `timeout:` (milliseconds or `:infinity`;
  default 30 000 for `execute/4`, 15 000 otherwise, counted from the moment the call is
  queued). A call that times out returns `{:error, %DSPex.Native.Error{reason: :timeout}}`
  and its work stops: a job still queued is dropped; a running job is interrupted by an
  asynchronous `dspex_bridge.Cancelled` exception raised in its Python code, and its worker
  goes back to serving others. Python blocked inside C (waiting on a socket) sees the
  exception when it returns to Python. A late answer never reaches the caller's mailbox.

  The same happens when the calling process dies while its job is queued or running.

  ## Concurrent changes

  Calls on one session may overlap. An `execute/4` that has started runs to completion with
  the program and LM it started with, even if `delete_program/2`, `reset/1`, `configure/2`
  or `close/1` happen meanwhile; calls that start afterwards see the change (`:not_found`,
  the new LM, `:closed`).
  """

  alias DSPex.Native.{Call, Error, NIF, Remote}

  @enforce_keys [:resource, :id, :name]
  defstruct [:resource, :id, :name, node: nil]

  @typedoc "A session handle."
  @type t :: %__MODULE__{
          resource: reference(),
          id: pos_integer(),
          name: String.t() | nil,
          node: node() | nil
        }

  # A session on another node: every call goes there (see DSPex.Native.Remote).
  defguardp remote?(session) when is_struct(session, __MODULE__) and session.node != nil

  @typedoc "See the module doc."
  @type lm_spec ::
          nil
          | String.t()
          | {String.t(), keyword()}
          | {:dummy, [map()] | %{String.t() => map()}}

  @typedoc "A program ID: a string, or an atom taken as its name."
  @type program_id :: String.t() | atom()

  @typedoc "A DSPy string signature or a structured one; see the module doc."
  @type signature :: String.t() | map() | keyword()

  @execute_timeout 30_000
  @default_timeout 15_000

  @doc """
  Opens a session.

  Options: `:name` (a string shown by `inspect/1` and `info/1`), `:lm` (an `t:lm_spec/0`),
  `:owner` (a pid: the session is closed when that process exits, wherever its handle has
  been copied to; without it, garbage collection alone decides), `:timeout`. `open/0` opens
  an unnamed session with no LM.

  Where the session lives: `node: node` opens it on another node of the cluster that runs
  `:dspex_native` (see `DSPex.Native.Remote`); `placement: :least_loaded` picks the
  connected node with the fewest queued jobs per worker (then the fewest sessions), and
  `placement: {:nodes, [node]}` picks among those; `:local` (the default) is this node. A
  remote session works with every function here, from any node, with the same results.

  ## Examples

      iex> {:ok, session} = DSPex.Native.Session.open(name: "user_a", lm: {:dummy, [%{"answer" => "4"}]})
      iex> session.name
      "user_a"
  """
  @spec open(keyword()) :: {:ok, t()} | {:error, Error.t()}
  def open(opts \\ []) do
    with {:ok, opts} <- options(opts, [:name, :lm, :owner, :timeout, :node, :placement]),
         {:ok, node} <- placement(opts) do
      opts = Keyword.drop(opts, [:node, :placement])

      if node == node() do
        open_here(opts)
      else
        with {:ok, _} <- lm_spec(Keyword.get(opts, :lm)),
             {:ok, timeout} <- timeout(opts, @default_timeout),
             :ok <-
               if(is_pid(opts[:owner]) or opts[:owner] == nil,
                 do: :ok,
                 else: {:error, invalid("owner must be a pid")}
               ) do
          Remote.open(node, opts, timeout)
        end
      end
    end
  end

  defp placement(opts) do
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

  defp open_here(opts) do
    with {:ok, name} <- name(Keyword.get(opts, :name)),
         {:ok, lm} <- lm_spec(Keyword.get(opts, :lm)),
         {:ok, owner} <- owner(Keyword.get(opts, :owner)),
         {:ok, timeout} <- timeout(opts, @default_timeout),
         {:ok, resource} <- Call.run(&open_job(name, lm, owner, &1, &2), timeout) do
      {id, name, _closed} = NIF.session_meta(resource)
      {:ok, %__MODULE__{resource: resource, id: id, name: if(name == "", do: nil, else: name)}}
    end
  end

  @doc """
  Like `open/1`, but raises `DSPex.Native.Error`.

  ## Examples

      iex> session = DSPex.Native.Session.open!(name: "scratch")
      iex> is_integer(session.id)
      true
  """
  @spec open!(keyword()) :: t()
  def open!(opts \\ []), do: bang(open(opts))

  @doc """
  Closes the session and frees its Python objects. Idempotent; afterwards every call on it
  returns `{:error, %DSPex.Native.Error{reason: :closed}}`.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> DSPex.Native.Session.close(session)
      :ok
      iex> {:error, %DSPex.Native.Error{reason: :closed}} = DSPex.Native.Session.list_programs(session)
  """
  @spec close(t()) :: :ok
  def close(session) when remote?(session) do
    # Idempotent: a session whose node is gone is closed already.
    Remote.call(session, :close, [], @default_timeout)
    :ok
  end

  def close(%__MODULE__{resource: resource}), do: NIF.session_close(resource)

  @doc """
  Drops every program; the session and its LM stay.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> :ok = DSPex.Native.Session.create_program(session, "p", signature: "q -> a")
      iex> DSPex.Native.Session.reset(session)
      :ok
      iex> DSPex.Native.Session.list_programs(session)
      {:ok, []}
  """
  @spec reset(t(), keyword()) :: :ok | {:error, Error.t()}
  def reset(session, opts \\ [])
  def reset(session, opts) when remote?(session), do: remote(session, :reset, [opts], opts)

  def reset(session, opts) do
    with {:ok, opts} <- options(opts, [:timeout]) do
      ok(call(session, "reset", %{}, opts, @default_timeout))
    end
  end

  @doc """
  Changes the session's settings. Options: `:lm` (an `t:lm_spec/0`; `nil` removes it; left
  as it is when not given), `:timeout`. Executions already running keep the LM they started
  with. If the new LM cannot be built, the session keeps its current one.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> DSPex.Native.Session.configure(session, lm: {:dummy, [%{"answer" => "yes"}]})
      :ok
  """
  @spec configure(t(), keyword()) :: :ok | {:error, Error.t()}
  def configure(session, opts) when remote?(session),
    do: remote(session, :configure, [opts], opts)

  def configure(session, opts) do
    with {:ok, opts} <- options(opts, [:lm, :timeout]),
         {:ok, settings} <- settings(opts) do
      ok(call(session, "configure", settings, opts, @default_timeout))
    end
  end

  @doc """
  Creates a program in the session.

  Options: `:signature` (required; see the module doc), `:module` (`:predict`, the default,
  `:chain_of_thought`, `:react`, or `{:custom, "ClassName"}` for a class loaded with
  `load_module/4`, where the signature is optional), `:replace` (overwrite an existing
  program with this ID instead of returning `:already_exists`), `:timeout`.

  `module: :react` is DSPy's ReAct agent with Elixir tools. `:tools` is a list of
  `%{name: "weather", description: "...", args: [city: :string], fun: fn args -> ... end}`
  (argument types as for signature fields, or `[type: t, desc: "..."]`); `fun` gets a map
  of the arguments the LM chose (string keys) and returns any term with a Python form. When
  DSPy calls a tool, the function runs in a process of its own, tied to the call, while the
  Python worker waits without the GIL; an exception, exit or a `:tool_timeout`
  (milliseconds, default 30 000) reaches DSPy as a tool error, which ReAct shows the LM,
  and the process is killed once nobody waits for it. `:max_iters` (default 10) passes
  through. A tool is its own function wherever its name is used; it is freed with its program.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> DSPex.Native.Session.create_program(session, "qa", signature: "question -> answer")
      :ok
      iex> {:error, %DSPex.Native.Error{reason: :already_exists}} =
      ...>   DSPex.Native.Session.create_program(session, "qa", signature: "question -> answer")
      iex> DSPex.Native.Session.create_program(session, :qa,
      ...>   signature: %{inputs: [question: "a question"], outputs: [:answer]},
      ...>   module: :chain_of_thought, replace: true)
      :ok
  """
  @spec create_program(t(), program_id(), keyword()) :: :ok | {:error, Error.t()}
  def create_program(session, id, opts) when remote?(session),
    do: remote(session, :create_program, [id, opts], opts)

  def create_program(session, id, opts) do
    allowed = [:signature, :module, :replace, :timeout, :tools, :max_iters, :tool_timeout]

    with {:ok, opts} <- options(opts, allowed),
         {:ok, id} <- program_id(id),
         {:ok, module} <- module_kind(Keyword.get(opts, :module, :predict)),
         {:ok, signature} <- program_signature(Keyword.get(opts, :signature), module),
         {:ok, replace} <- boolean(Keyword.get(opts, :replace, false), :replace),
         {:ok, react} <- react_options(module, opts) do
      args =
        Map.merge(
          %{"id" => id, "signature" => signature, "module" => module, "replace" => replace},
          react.args
        )

      ok(call(session, "create_program", args, opts, @default_timeout))
    end
  end

  @doc """
  Like `create_program/3`, but raises `DSPex.Native.Error`.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> DSPex.Native.Session.create_program!(session, "qa", signature: "question -> answer")
      :ok
  """
  @spec create_program!(t(), program_id(), keyword()) :: :ok
  def create_program!(session, id, opts), do: bang(create_program(session, id, opts))

  @doc """
  Runs a program. `inputs` is a map with atom or string keys naming the signature's input
  fields; the result maps each output field (as a string) to its value, plus `"reasoning"`
  for `:chain_of_thought`. Options: `:timeout` (default 30 s).

  ## Examples

      iex> session = DSPex.Native.Session.open!(lm: {:dummy, [%{"answer" => "4"}]})
      iex> :ok = DSPex.Native.Session.create_program(session, "math", signature: "question -> answer")
      iex> DSPex.Native.Session.execute(session, "math", %{question: "2 + 2?"})
      {:ok, %{"answer" => "4"}}
      iex> {:error, %DSPex.Native.Error{reason: :not_found}} =
      ...>   DSPex.Native.Session.execute(session, "nope", %{question: "?"})
  """
  @spec execute(t(), program_id(), map(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  def execute(session, id, inputs, opts \\ [])

  def execute(session, id, inputs, opts) when remote?(session),
    do: remote(session, :execute, [id, inputs, opts], opts, @execute_timeout)

  def execute(session, id, inputs, opts) do
    with {:ok, opts} <- options(opts, [:timeout]),
         {:ok, id} <- program_id(id),
         :ok <- inputs(inputs) do
      call(session, "execute", %{"id" => id, "inputs" => inputs}, opts, @execute_timeout)
    end
  end

  @doc """
  Like `execute/4`, but returns the outputs or raises `DSPex.Native.Error`.

  ## Examples

      iex> session = DSPex.Native.Session.open!(lm: {:dummy, [%{"answer" => "4"}]})
      iex> DSPex.Native.Session.create_program!(session, "math", signature: "question -> answer")
      iex> DSPex.Native.Session.execute!(session, "math", %{question: "2 + 2?"})
      %{"answer" => "4"}
  """
  @spec execute!(t(), program_id(), map(), keyword()) :: map()
  def execute!(session, id, inputs, opts \\ []), do: bang(execute(session, id, inputs, opts))

  @doc """
  The session's program IDs, sorted.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> :ok = DSPex.Native.Session.create_program(session, "b", signature: "q -> a")
      iex> :ok = DSPex.Native.Session.create_program(session, "a", signature: "q -> a")
      iex> DSPex.Native.Session.list_programs(session)
      {:ok, ["a", "b"]}
  """
  @spec list_programs(t(), keyword()) :: {:ok, [String.t()]} | {:error, Error.t()}
  def list_programs(session, opts \\ [])

  def list_programs(session, opts) when remote?(session),
    do: remote(session, :list_programs, [opts], opts)

  def list_programs(session, opts) do
    with {:ok, opts} <- options(opts, [:timeout]) do
      call(session, "list_programs", %{}, opts, @default_timeout)
    end
  end

  @doc """
  Deletes a program; `:not_found` if the session has none with that ID.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> :ok = DSPex.Native.Session.create_program(session, "p", signature: "q -> a")
      iex> DSPex.Native.Session.delete_program(session, "p")
      :ok
      iex> {:error, %DSPex.Native.Error{reason: :not_found}} = DSPex.Native.Session.delete_program(session, "p")
  """
  @spec delete_program(t(), program_id(), keyword()) :: :ok | {:error, Error.t()}
  def delete_program(session, id, opts \\ [])

  def delete_program(session, id, opts) when remote?(session),
    do: remote(session, :delete_program, [id, opts], opts)

  def delete_program(session, id, opts) do
    with {:ok, opts} <- options(opts, [:timeout]),
         {:ok, id} <- program_id(id) do
      ok(call(session, "delete_program", %{"id" => id}, opts, @default_timeout))
    end
  end

  @doc """
  Runs Python `source` in a namespace that belongs to this session, so that a
  `dspy.Module` subclass defined there can be used as `module: {:custom, "ClassName"}` in
  `create_program/3`. Another session never sees it; closing the session drops it.

  This is full trust: the source is Python, run inside this BEAM with all its rights.
  Load only code you would run yourself. Returns the names of the `dspy.Module` subclasses
  the source defined.

  ## Examples

      iex> session = DSPex.Native.Session.open!(lm: {:dummy, [%{"loud" => "hey"}]})
      iex> source = \"""
      ...> import dspy
      ...> class Shout(dspy.Module):
      ...>     def __init__(self):
      ...>         super().__init__()
      ...>         self.predict = dspy.Predict("text -> loud")
      ...>     def forward(self, text):
      ...>         return dspy.Prediction(loud=self.predict(text=text).loud.upper())
      ...> \"""
      iex> DSPex.Native.Session.load_module(session, "shout", source)
      {:ok, ["Shout"]}
      iex> :ok = DSPex.Native.Session.create_program(session, "s", module: {:custom, "Shout"})
      iex> DSPex.Native.Session.execute(session, "s", %{text: "hi"})
      {:ok, %{"loud" => "HEY"}}
  """
  @spec load_module(t(), String.t(), String.t(), keyword()) ::
          {:ok, [String.t()]} | {:error, Error.t()}
  def load_module(session, name, source, opts \\ [])

  def load_module(session, name, source, opts) when remote?(session),
    do: remote(session, :load_module, [name, source, opts], opts)

  def load_module(session, name, source, opts) do
    with {:ok, opts} <- options(opts, [:timeout]),
         :ok <- text(name, "module name"),
         :ok <- text(source, "module source") do
      call(session, "load_module", %{"name" => name, "source" => source}, opts, @default_timeout)
    end
  end

  @doc """
  Optimises program `id` against `trainset` (a list of maps holding its inputs and the
  expected outputs) with one of DSPy's optimizers, offline-capable with DummyLM.

  Options:

  * `:optimizer`: `:labeled_few_shot` (the default: trainset examples become demos) or
    `:bootstrap_few_shot` (runs the program on the trainset and keeps as demos the runs the
    metric accepts);
  * `:metric`: `{:exact_match, field}`, or an Elixir function
    `(example, prediction -> boolean | number)` called back like a ReAct tool (both maps
    with string keys); required by `:bootstrap_few_shot`;
  * `:as`: store the compiled program under this ID instead of replacing `id`;
  * `:k` (labeled), `:max_bootstrapped_demos`, `:max_labeled_demos`, `:max_errors`
    (bootstrap), `:metric_timeout` (ms), `:timeout`.

  Returns `{:ok, %{id: id, demos: count}}`.

  ## Examples

      iex> session = DSPex.Native.Session.open!(lm: {:dummy, %{"" => %{"answer" => "4"}}})
      iex> :ok = DSPex.Native.Session.create_program(session, "qa", signature: "question -> answer")
      iex> trainset = [%{question: "2+2?", answer: "4"}, %{question: "3+3?", answer: "6"}]
      iex> DSPex.Native.Session.compile(session, "qa", trainset,
      ...>   optimizer: :bootstrap_few_shot, metric: {:exact_match, :answer}, max_labeled_demos: 0)
      {:ok, %{id: "qa", demos: 1}}
  """
  @spec compile(t(), program_id(), [map()], keyword()) ::
          {:ok, %{id: String.t(), demos: non_neg_integer()}} | {:error, Error.t()}
  def compile(session, id, trainset, opts \\ [])

  def compile(session, id, trainset, opts) when remote?(session),
    do: remote(session, :compile, [id, trainset, opts], opts, @execute_timeout * 10)

  def compile(session, id, trainset, opts) do
    allowed = [
      :optimizer,
      :metric,
      :as,
      :k,
      :max_bootstrapped_demos,
      :max_labeled_demos,
      :max_errors,
      :metric_timeout,
      :timeout
    ]

    with {:ok, opts} <- options(opts, allowed),
         {:ok, id} <- program_id(id),
         {:ok, as} <- if(opts[:as], do: program_id(opts[:as]), else: {:ok, nil}),
         {:ok, optimizer} <- optimizer(Keyword.get(opts, :optimizer, :labeled_few_shot)),
         {:ok, metric} <- metric(Keyword.get(opts, :metric)),
         true <- is_list(trainset) || {:error, invalid("trainset must be a list of maps")} do
      numbers = Keyword.take(opts, [:k, :max_bootstrapped_demos, :max_labeled_demos, :max_errors])

      options =
        Map.new(numbers, fn {k, v} -> {Atom.to_string(k), v} end)
        |> Map.put("metric_timeout", Keyword.get(opts, :metric_timeout, 30_000) / 1000)

      args = %{
        "id" => id,
        "trainset" => trainset,
        "optimizer" => optimizer,
        "metric" => metric,
        "as" => as,
        "options" => options
      }

      with {:ok, result} <-
             call(session, "compile", args, opts, @execute_timeout * 10) do
        {:ok, %{id: result["id"], demos: result["demos"]}}
      end
    end
  end

  defp optimizer(o) when o in [:labeled_few_shot, :bootstrap_few_shot],
    do: {:ok, Atom.to_string(o)}

  defp optimizer(o),
    do:
      {:error,
       invalid("optimizer must be :labeled_few_shot or :bootstrap_few_shot, got #{inspect(o)}")}

  defp metric(nil), do: {:ok, nil}

  defp metric({:exact_match, field}) when is_atom(field) or is_binary(field),
    do: {:ok, %{"kind" => "exact_match", "field" => to_string(field)}}

  # The function goes with this compile only: Python drops it when the compile ends.
  defp metric(fun) when is_function(fun, 2) do
    {:ok,
     %{
       "kind" => "elixir",
       "key" => fun_handle(fn %{"example" => e, "prediction" => p} -> fun.(e, p) end)
     }}
  end

  defp metric(other),
    do:
      {:error,
       invalid(
         "metric must be {:exact_match, field} or a 2-arity function, got #{inspect(other)}"
       )}

  @doc """
  The program's state as a JSON-encodable map (string keys): its module kind, its
  signature as it was given, and DSPy's state (demos, instructions, field descriptions).
  `import_program/4` recreates it in any session, also in a later BEAM.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> :ok = DSPex.Native.Session.create_program(session, "qa",
      ...>   signature: %{inputs: [:question], outputs: [:answer], instructions: "Be terse."})
      iex> {:ok, exported} = DSPex.Native.Session.export_program(session, "qa")
      iex> {exported["module"], exported["state"]["signature"]["instructions"]}
      {"predict", "Be terse."}
  """
  @spec export_program(t(), program_id(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  def export_program(session, id, opts \\ [])

  def export_program(session, id, opts) when remote?(session),
    do: remote(session, :export_program, [id, opts], opts)

  def export_program(session, id, opts) do
    with {:ok, opts} <- options(opts, [:timeout]),
         {:ok, id} <- program_id(id) do
      call(session, "export_program", %{"id" => id}, opts, @default_timeout)
    end
  end

  @doc """
  Recreates a program from `export_program/3`'s map under `id` (a custom module's class
  must be loaded in this session first). Options: `:replace`, `:timeout`.

  An export is treated as untrusted data: the whole map is checked against the format
  `export_program/3` writes (known keys only, demos holding only the program's fields as
  plain values, at most 1,000 demos and 10 million characters of demo values). LM settings
  (`"lm"`), unknown keys and bad types are refused with `:invalid_argument` naming the key,
  and nothing is installed.

  ## Examples

      iex> a = DSPex.Native.Session.open!()
      iex> :ok = DSPex.Native.Session.create_program(a, "qa", signature: "question -> answer")
      iex> {:ok, exported} = DSPex.Native.Session.export_program(a, "qa")
      iex> b = DSPex.Native.Session.open!(lm: {:dummy, [%{"answer" => "copied"}]})
      iex> DSPex.Native.Session.import_program(b, "qa", exported)
      :ok
      iex> DSPex.Native.Session.execute(b, "qa", %{question: "?"})
      {:ok, %{"answer" => "copied"}}
  """
  @spec import_program(t(), program_id(), map(), keyword()) :: :ok | {:error, Error.t()}
  def import_program(session, id, exported, opts \\ [])

  def import_program(session, id, exported, opts) when remote?(session),
    do: remote(session, :import_program, [id, exported, opts], opts)

  def import_program(session, id, exported, opts) do
    with {:ok, opts} <- options(opts, [:replace, :timeout]),
         {:ok, id} <- program_id(id),
         {:ok, replace} <- boolean(Keyword.get(opts, :replace, false), :replace) do
      if is_map(exported) do
        args = %{"id" => id, "exported" => exported, "replace" => replace}
        ok(call(session, "import_program", args, opts, @default_timeout))
      else
        {:error, invalid("expected the map export_program/3 returned")}
      end
    end
  end

  @doc """
  The session's last `n` LM calls, oldest first: each a map with `:model`, `:messages`
  (what the LM was asked), `:outputs`, `:usage` (token counts), `:cost` and `:timestamp`.
  Each session sees only its own calls; a session keeps its last `history_size` (100).

  ## Examples

      iex> session = DSPex.Native.Session.open!(lm: {:dummy, [%{"answer" => "4"}]})
      iex> :ok = DSPex.Native.Session.create_program(session, "math", signature: "question -> answer")
      iex> {:ok, _} = DSPex.Native.Session.execute(session, "math", %{question: "2 + 2?"})
      iex> {:ok, [call]} = DSPex.Native.Session.history(session, 1)
      iex> call.model
      "dummy"
      iex> Enum.any?(call.messages, &(&1["content"] =~ "2 + 2?"))
      true
  """
  @spec history(t(), non_neg_integer(), keyword()) :: {:ok, [map()]} | {:error, Error.t()}
  def history(session, n \\ 10, opts \\ [])

  def history(session, n, opts) when remote?(session),
    do: remote(session, :history, [n, opts], opts)

  def history(session, n, opts) when is_integer(n) and n >= 0 do
    with {:ok, opts} <- options(opts, [:timeout]),
         {:ok, entries} <- call(session, "history", %{"n" => n}, opts, @default_timeout) do
      {:ok, Enum.map(entries, fn e -> Map.new(e, fn {k, v} -> {String.to_atom(k), v} end) end)}
    end
  end

  def history(_session, n, _opts),
    do: {:error, invalid("n must be a non-negative integer, got #{inspect(n)}")}

  @doc """
  What the session holds: `:id`, `:name`, `:programs` (a count), `:executions` (successful
  ones), `:failures`, `:lm` (the model's name only, `"dummy"` for DummyLM, or `nil`) and
  `:usage`, token totals per model (`%{"openai/gpt-4o-mini" => %{"prompt_tokens" => ...}}`).

  ## Examples

      iex> session = DSPex.Native.Session.open!(name: "stats", lm: {:dummy, []})
      iex> {:ok, info} = DSPex.Native.Session.info(session)
      iex> {info.name, info.programs, info.executions, info.lm}
      {"stats", 0, 0, "dummy"}
  """
  @spec info(t(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  def info(session, opts \\ [])
  def info(session, opts) when remote?(session), do: remote(session, :info, [opts], opts)

  def info(session, opts) do
    with {:ok, opts} <- options(opts, [:timeout]),
         {:ok, info} <- call(session, "info", %{}, opts, @default_timeout) do
      # The keys come from the bridge's fixed set, never from user data.
      {:ok, Map.new(info, fn {k, v} -> {String.to_atom(k), v} end)}
    end
  end

  # -- plumbing ----------------------------------------------------------------------------

  defp remote(session, fun, args, opts, default \\ @default_timeout) do
    timeout = if is_list(opts), do: Keyword.get(opts, :timeout, default), else: default

    Remote.call(
      session,
      fun,
      args,
      if(is_integer(timeout) or timeout == :infinity, do: timeout, else: default)
    )
  end

  defp call(%__MODULE__{resource: resource, id: id}, op, args, opts, default) do
    with {:ok, timeout} <- timeout(opts, default) do
      Call.run(&session_job(resource, op, args, &1, &2), timeout, session: id)
    end
  end

  defp call(other, _op, _args, _opts, _default) do
    {:error, invalid("expected a %DSPex.Native.Session{}, got #{inspect(other)}")}
  end

  defp open_job(name, lm, owner, tag, false), do: NIF.session_open(name, lm, owner, tag)
  defp open_job(name, lm, owner, tag, true), do: NIF.session_open_dirty(name, lm, owner, tag)

  defp session_job(resource, op, args, tag, false), do: NIF.session_call(resource, op, args, tag)

  defp session_job(resource, op, args, tag, true),
    do: NIF.session_call_dirty(resource, op, args, tag)

  defp owner(nil), do: {:ok, nil}
  defp owner(pid) when is_pid(pid) and node(pid) == node(), do: {:ok, pid}
  defp owner(other), do: {:error, invalid("owner must be a local pid, got #{inspect(other)}")}

  defp ok({:ok, nil}), do: :ok
  defp ok({:error, _} = error), do: error

  defp bang({:ok, value}), do: value
  defp bang(:ok), do: :ok
  defp bang({:error, error}), do: raise(error)

  defp invalid(message), do: Error.new(:invalid_argument, message)

  defp options(opts, allowed) when is_list(opts) do
    if Keyword.keyword?(opts) do
      case Keyword.keys(opts) -- allowed do
        [] ->
          {:ok, opts}

        unknown ->
          {:error, invalid("unknown options #{inspect(unknown)}; allowed: #{inspect(allowed)}")}
      end
    else
      {:error, invalid("options must be a keyword list, got #{inspect(opts)}")}
    end
  end

  defp options(opts, _allowed),
    do: {:error, invalid("options must be a keyword list, got #{inspect(opts)}")}

  defp timeout(opts, default) do
    case Keyword.get(opts, :timeout, default) do
      :infinity ->
        {:ok, :infinity}

      ms when is_integer(ms) and ms >= 0 ->
        {:ok, ms}

      other ->
        {:error,
         invalid("timeout must be a non-negative integer or :infinity, got #{inspect(other)}")}
    end
  end

  defp settings(opts) do
    case Keyword.fetch(opts, :lm) do
      {:ok, spec} -> with {:ok, lm} <- lm_spec(spec), do: {:ok, %{"lm" => lm}}
      :error -> {:ok, %{}}
    end
  end

  defp name(nil), do: {:ok, nil}

  defp name(name) when is_binary(name) do
    if String.valid?(name) and byte_size(name) <= 256,
      do: {:ok, name},
      else: {:error, invalid("name must be valid UTF-8 of at most 256 bytes")}
  end

  defp name(other), do: {:error, invalid("name must be a string, got #{inspect(other)}")}

  @max_id_bytes 256

  defp program_id(id) when is_atom(id) and id not in [nil, true, false],
    do: program_id(Atom.to_string(id))

  defp program_id(id) when is_binary(id) do
    cond do
      id == "" ->
        {:error, invalid("program ID must not be empty")}

      not String.valid?(id) ->
        {:error, invalid("program ID #{inspect(id)} is not valid UTF-8")}

      byte_size(id) > @max_id_bytes ->
        {:error, invalid("program ID is longer than #{@max_id_bytes} bytes")}

      true ->
        {:ok, id}
    end
  end

  defp program_id(other),
    do: {:error, invalid("program ID must be a string or an atom, got #{inspect(other)}")}

  defp inputs(inputs) when is_map(inputs) and not is_struct(inputs) do
    case Enum.reject(Map.keys(inputs), &(is_binary(&1) or is_atom(&1))) do
      [] -> :ok
      bad -> {:error, invalid("input names must be atoms or strings, got #{inspect(bad)}")}
    end
  end

  defp inputs(other), do: {:error, invalid("inputs must be a map, got #{inspect(other)}")}

  # A function for Python to call back: the handle is its key, and Python keeps it inside
  # the program (or compile) that uses it, so it goes when that goes. If the NIF is not
  # loaded the call that would carry it fails with :not_started anyway.
  defp fun_handle(fun) do
    case Call.safe(fn -> NIF.callback_handle(fun) end) do
      {:error, _} -> nil
      handle -> handle
    end
  end

  @no_react %{args: %{}}

  defp react_options("react", opts) do
    with {:ok, tools} <- tools(Keyword.get(opts, :tools)),
         {:ok, max_iters} <- positive(Keyword.get(opts, :max_iters, 10), :max_iters),
         {:ok, tool_timeout} <- positive(Keyword.get(opts, :tool_timeout, 30_000), :tool_timeout) do
      {:ok,
       %{
         args: %{
           "tools" => Enum.map(tools, & &1.spec),
           "max_iters" => max_iters,
           "tool_timeout" => tool_timeout / 1000
         }
       }}
    end
  end

  defp react_options(_module, opts) do
    case Keyword.take(opts, [:tools, :max_iters, :tool_timeout]) do
      [] -> {:ok, @no_react}
      given -> {:error, invalid("#{inspect(Keyword.keys(given))} only apply to module: :react")}
    end
  end

  defp positive(n, _key) when is_integer(n) and n > 0, do: {:ok, n}

  defp positive(n, key),
    do: {:error, invalid("#{key} must be a positive integer, got #{inspect(n)}")}

  defp tools(list) when is_list(list) and list != [] do
    Enum.reduce_while(list, {:ok, []}, fn tool, {:ok, acc} ->
      case tool(tool) do
        {:ok, t} -> {:cont, {:ok, acc ++ [t]}}
        {:error, _} = error -> {:halt, error}
      end
    end)
  end

  defp tools(_),
    do: {:error, invalid("module: :react needs tools: a non-empty list of tools")}

  defp tool(tool) when is_list(tool), do: tool(Map.new(tool))

  defp tool(%{name: name, fun: fun} = tool) when is_function(fun, 1) do
    with :ok <- text(to_string(name), "tool name"),
         {:ok, args} <- tool_args(Map.get(tool, :args, %{})) do
      name = to_string(name)

      {:ok,
       %{
         spec: %{
           "name" => name,
           "description" => Map.get(tool, :description, ""),
           "args" => args,
           "key" => fun_handle(fun)
         }
       }}
    end
  end

  defp tool(other) do
    {:error,
     invalid(
       "a tool is %{name: \"...\", description: \"...\", args: [arg: :type], fun: fn args -> ... end}" <>
         " (fun takes one map); got #{inspect(other)}"
     )}
  end

  # Tool arguments as JSON schema, which is what DSPy shows the LM.
  defp tool_args(args) when is_map(args) or is_list(args) do
    Enum.reduce_while(args, {:ok, %{}}, fn
      {name, spec}, {:ok, acc} when is_atom(name) or is_binary(name) ->
        {type, desc} =
          case spec do
            opts when is_list(opts) ->
              {Keyword.get(opts, :type, :string), Keyword.get(opts, :desc)}

            type ->
              {type, nil}
          end

        case json_schema(type) do
          {:ok, schema} ->
            schema = if desc, do: Map.put(schema, "description", desc), else: schema
            {:cont, {:ok, Map.put(acc, to_string(name), schema)}}

          :error ->
            {:halt,
             {:error, invalid("tool argument #{name} has an unknown type #{inspect(type)}")}}
        end

      other, _ ->
        {:halt, {:error, invalid("cannot read tool argument #{inspect(other)}")}}
    end)
  end

  defp tool_args(other),
    do: {:error, invalid("tool args must be a keyword list or map, got #{inspect(other)}")}

  defp json_schema(:string), do: {:ok, %{"type" => "string"}}
  defp json_schema(:integer), do: {:ok, %{"type" => "integer"}}
  defp json_schema(:float), do: {:ok, %{"type" => "number"}}
  defp json_schema(:boolean), do: {:ok, %{"type" => "boolean"}}
  defp json_schema(:map), do: {:ok, %{"type" => "object"}}

  defp json_schema({:list, inner}) do
    with {:ok, items} <- json_schema(inner), do: {:ok, %{"type" => "array", "items" => items}}
  end

  defp json_schema(_), do: :error

  defp module_kind(:predict), do: {:ok, "predict"}
  defp module_kind(:react), do: {:ok, "react"}
  defp module_kind(:chain_of_thought), do: {:ok, "chain_of_thought"}

  defp module_kind({:custom, class}) when is_binary(class) or is_atom(class),
    do: {:ok, ["custom", to_string(class)]}

  defp module_kind(other) do
    {:error,
     invalid(
       "module must be :predict, :chain_of_thought, :react or {:custom, \"ClassName\"}, got #{inspect(other)}"
     )}
  end

  defp text(value, what) do
    if is_binary(value) and String.valid?(value),
      do: :ok,
      else: {:error, invalid("#{what} must be a UTF-8 string")}
  end

  defp boolean(value, _key) when is_boolean(value), do: {:ok, value}

  defp boolean(value, key),
    do: {:error, invalid("#{key} must be a boolean, got #{inspect(value)}")}

  # A custom module may build its own predictors: its signature is optional.
  defp program_signature(nil, ["custom", _]), do: {:ok, nil}
  defp program_signature(sig, _module), do: signature(sig)

  defp signature(sig) when is_binary(sig), do: {:ok, sig}

  defp signature(sig) when is_list(sig) do
    if Keyword.keyword?(sig) and sig != [],
      do: signature(Map.new(sig)),
      else: {:error, invalid_signature("a signature must be a string, a map or a keyword list")}
  end

  defp signature(%{} = sig) when not is_struct(sig) do
    with {:ok, inputs} <- fields(sig, :inputs),
         {:ok, outputs} <- fields(sig, :outputs),
         {:ok, instructions} <- instructions(Map.get(sig, :instructions)) do
      case Map.keys(sig) -- [:inputs, :outputs, :instructions] do
        [] ->
          {:ok, %{"inputs" => inputs, "outputs" => outputs, "instructions" => instructions}}

        extra ->
          {:error, invalid_signature("unknown signature keys #{inspect(extra)}")}
      end
    end
  end

  defp signature(nil), do: {:error, invalid_signature("the :signature option is required")}

  defp signature(other),
    do:
      {:error, invalid_signature("a signature must be a string or a map, got #{inspect(other)}")}

  defp fields(sig, key) do
    case Map.get(sig, key) do
      list when is_list(list) and list != [] ->
        list
        |> Enum.reduce_while([], fn field, acc ->
          case field(field) do
            {:ok, pair} ->
              {:cont, [pair | acc]}

            :error ->
              {:halt,
               {:error,
                invalid_signature(
                  "#{key}: cannot read field #{inspect(field)}; use name or {name, \"description\"}"
                )}}
          end
        end)
        |> case do
          {:error, _} = error -> error
          pairs -> {:ok, Enum.reverse(pairs)}
        end

      _ ->
        {:error,
         invalid_signature("a structured signature needs a non-empty #{inspect(key)} list")}
    end
  end

  defp field(name) when is_atom(name) and not is_nil(name), do: {:ok, [Atom.to_string(name), nil]}
  defp field(name) when is_binary(name), do: {:ok, [name, nil]}

  defp field({name, desc})
       when (is_atom(name) or is_binary(name)) and (is_binary(desc) or is_nil(desc)),
       do: {:ok, [to_string(name), desc]}

  defp field({name, opts}) when (is_atom(name) or is_binary(name)) and is_list(opts) do
    with true <- Keyword.keyword?(opts) and Keyword.keys(opts) -- [:type, :desc] == [],
         desc when is_binary(desc) or is_nil(desc) <- Keyword.get(opts, :desc),
         {:ok, type} <- field_type(Keyword.get(opts, :type)) do
      {:ok, [to_string(name), desc, type]}
    else
      _ -> :error
    end
  end

  defp field({name, type}) when is_atom(name) or is_binary(name) do
    with {:ok, type} <- field_type(type), do: {:ok, [to_string(name), nil, type]}
  end

  defp field(_), do: :error

  # Field types become Python annotations (str, int, float, bool, dict, list[...],
  # Literal[...]); outputs come back as the matching Elixir terms.
  defp field_type(nil), do: {:ok, nil}

  defp field_type(t) when t in [:string, :integer, :float, :boolean, :map],
    do: {:ok, Atom.to_string(t)}

  defp field_type({:list, inner}) do
    with {:ok, inner} when inner != nil <- field_type(inner), do: {:ok, ["list", inner]}
  end

  defp field_type({:literal, [_ | _] = values}) do
    if Enum.all?(values, &(is_binary(&1) or is_atom(&1) or is_number(&1))),
      do: {:ok, ["literal", Enum.map(values, &literal/1)]},
      else: :error
  end

  defp field_type(_), do: :error

  defp literal(v) when is_atom(v) and not is_boolean(v) and not is_nil(v), do: Atom.to_string(v)
  defp literal(v), do: v

  defp instructions(nil), do: {:ok, nil}
  defp instructions(text) when is_binary(text), do: {:ok, text}
  defp instructions(_), do: {:error, invalid_signature("instructions must be a string")}

  defp invalid_signature(message), do: Error.new(:invalid_signature, message)

  # Never inspect an LM spec in a message: it may hold an API key.
  defp lm_spec(nil), do: {:ok, nil}
  defp lm_spec(model) when is_binary(model), do: lm_spec({model, []})

  defp lm_spec({:dummy, answers}) when is_list(answers) or is_map(answers),
    do: {:ok, %{"kind" => "dummy", "answers" => answers}}

  defp lm_spec({model, opts}) when is_binary(model) and is_list(opts) do
    if Keyword.keyword?(opts) do
      {:ok,
       %{
         "kind" => "lm",
         "model" => model,
         "kwargs" => Map.new(opts, fn {k, v} -> {Atom.to_string(k), v} end)
       }}
    else
      {:error, invalid("lm options must be a keyword list (passed on to dspy.LM)")}
    end
  end

  defp lm_spec(_other) do
    {:error,
     invalid(
       "lm must be nil, a model string, {model, keyword} or {:dummy, answers} (a list or map of output maps)"
     )}
  end

  defimpl Inspect do
    # Reads only the struct: inspecting never calls into Python or the NIF.
    def inspect(%{id: id, name: name, node: node}, _opts) do
      name = if name in [nil, ""], do: "", else: " " <> Kernel.inspect(name)
      where = if node, do: " on #{node}", else: ""
      "#DSPex.Native.Session<#{id}#{name}#{where}>"
    end
  end
end
