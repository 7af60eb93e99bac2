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

  alias DSPex.Native.{Args, Call, Error, LM, NIF, Optimizer, Remote, Signature, Tool}

  import DSPex.Native.Args, only: [invalid: 1]

  @enforce_keys [:resource, :id, :name]
  defstruct [:resource, :id, :name, node: nil]

  @typedoc "A session handle."
  @type t :: %__MODULE__{
          resource: reference(),
          id: pos_integer(),
          name: String.t() | nil,
          node: node() | nil
        }

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
  @compile_timeout 300_000
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
    allowed = [:name, :lm, :adapter, :owner, :timeout, :node, :placement]

    with {:ok, opts} <- Args.options(opts, allowed),
         {:ok, node} <- Remote.placement(opts) do
      opts = Keyword.drop(opts, [:node, :placement])
      if node == node(), do: open_here(opts), else: Remote.open(node, opts, @default_timeout)
    end
  end

  @doc false
  # Opens a session on this node (also what `Remote` runs on the session's node).
  def open_here(opts) do
    with {:ok, name} <- Args.name(Keyword.get(opts, :name)),
         {:ok, lm} <- LM.spec(Keyword.get(opts, :lm)),
         {:ok, owner} <- Args.owner(Keyword.get(opts, :owner)),
         {:ok, timeout} <- Args.timeout(opts, @default_timeout),
         {:ok, resource} <- Call.run({:session_open, [name, lm, owner]}, timeout) do
      {id, name, _closed} = NIF.session_meta(resource)
      session = %__MODULE__{resource: resource, id: id, name: if(name == "", do: nil, else: name)}
      with_adapter(session, opts)
    end
  end

  # `adapter:` at open is a configure right after: a session without one opens in one job.
  defp with_adapter(session, opts) do
    case Keyword.fetch(opts, :adapter) do
      :error ->
        {:ok, session}

      {:ok, adapter} ->
        timeout = Keyword.get(opts, :timeout, @default_timeout)

        case configure(session, adapter: adapter, timeout: timeout) do
          :ok -> {:ok, session}
          {:error, _} = error -> close(session) && error
        end
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
  def close(%__MODULE__{node: node} = session) when node != nil do
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
  def reset(session, opts \\ []) do
    route(session, {:reset, [opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]) do
        ok(call(session, "reset", %{}, opts, @default_timeout))
      end
    end)
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
  def configure(session, opts) do
    route(session, {:configure, [opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:lm, :adapter, :timeout]),
           {:ok, settings} <- LM.settings(opts) do
        ok(call(session, "configure", settings, opts, @default_timeout))
      end
    end)
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
  def create_program(session, id, opts) do
    route(session, {:create_program, [id, opts]}, opts, @default_timeout, fn ->
      allowed = [:signature, :module, :adapter, :replace, :timeout] ++ Tool.react_options()

      with {:ok, opts} <- Args.options(opts, allowed),
           {:ok, id} <- Args.program_id(id),
           {:ok, module} <- Signature.module_kind(Keyword.get(opts, :module, :predict)),
           {:ok, signature} <- Signature.program_signature(Keyword.get(opts, :signature), module),
           {:ok, replace} <- Args.boolean(Keyword.get(opts, :replace, false), :replace),
           {:ok, react} <- Tool.react_args(module, opts) do
        args = %{"id" => id, "signature" => signature, "module" => module, "replace" => replace}
        args = args |> Map.merge(react) |> Map.put("adapter", Keyword.get(opts, :adapter))
        ok(call(session, "create_program", args, opts, @default_timeout))
      end
    end)
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
  def execute(session, id, inputs, opts \\ []) do
    route(session, {:execute, [id, inputs, opts]}, opts, @execute_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]),
           {:ok, id} <- Args.program_id(id),
           :ok <- Args.inputs(inputs) do
        call(session, "execute", %{"id" => id, "inputs" => inputs}, opts, @execute_timeout)
      end
    end)
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
  def list_programs(session, opts \\ []) do
    route(session, {:list_programs, [opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]) do
        call(session, "list_programs", %{}, opts, @default_timeout)
      end
    end)
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
  def delete_program(session, id, opts \\ []) do
    route(session, {:delete_program, [id, opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]),
           {:ok, id} <- Args.program_id(id) do
        ok(call(session, "delete_program", %{"id" => id}, opts, @default_timeout))
      end
    end)
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
  def load_module(session, name, source, opts \\ []) do
    route(session, {:load_module, [name, source, opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]),
           :ok <- Args.text(name, "module name"),
           :ok <- Args.text(source, "module source") do
        args = %{"name" => name, "source" => source}
        call(session, "load_module", args, opts, @default_timeout)
      end
    end)
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
  def compile(session, id, trainset, opts \\ []) do
    route(session, {:compile, [id, trainset, opts]}, opts, @compile_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:as, :timeout | Optimizer.options()]),
           {:ok, id} <- Args.program_id(id),
           {:ok, as} <- if(opts[:as], do: Args.program_id(opts[:as]), else: {:ok, nil}),
           {:ok, args} <- Optimizer.args(trainset, opts),
           args = Map.merge(args, %{"id" => id, "as" => as}),
           {:ok, result} <- call(session, "compile", args, opts, @compile_timeout) do
        {:ok, %{id: result["id"], demos: result["demos"]}}
      end
    end)
  end

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
  def export_program(session, id, opts \\ []) do
    route(session, {:export_program, [id, opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]),
           {:ok, id} <- Args.program_id(id) do
        call(session, "export_program", %{"id" => id}, opts, @default_timeout)
      end
    end)
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
  def import_program(session, id, exported, opts \\ []) do
    route(session, {:import_program, [id, exported, opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:replace, :timeout]),
           {:ok, id} <- Args.program_id(id),
           {:ok, replace} <- Args.boolean(Keyword.get(opts, :replace, false), :replace),
           true <-
             is_map(exported) || {:error, invalid("expected the map export_program/3 returned")} do
        args = %{"id" => id, "exported" => exported, "replace" => replace}
        ok(call(session, "import_program", args, opts, @default_timeout))
      end
    end)
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
  def history(session, n \\ 10, opts \\ []) do
    route(session, {:history, [n, opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]),
           {:ok, n} <- Args.count(n, "n"),
           {:ok, entries} <- call(session, "history", %{"n" => n}, opts, @default_timeout) do
        {:ok, Enum.map(entries, fn e -> Map.new(e, fn {k, v} -> {String.to_atom(k), v} end) end)}
      end
    end)
  end

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
  def info(session, opts \\ []) do
    route(session, {:info, [opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]),
           {:ok, info} <- call(session, "info", %{}, opts, @default_timeout) do
        # The keys come from the bridge's fixed set, never from user data.
        {:ok, Map.new(info, fn {k, v} -> {String.to_atom(k), v} end)}
      end
    end)
  end

  # -- plumbing ----------------------------------------------------------------------------

  # A session on another node: the same function runs there (see DSPex.Native.Remote).
  defp route(%__MODULE__{node: node} = session, {fun, args}, opts, default, _local)
       when node != nil,
       do: Remote.call(session, fun, args, Args.remote_timeout(opts, default))

  defp route(_session, _call, _opts, _default, local), do: local.()

  defp call(%__MODULE__{resource: resource, id: id}, op, args, opts, default) do
    with {:ok, timeout} <- Args.timeout(opts, default) do
      Call.run({:session_call, [resource, op, args]}, timeout, session: id)
    end
  end

  defp call(other, _op, _args, _opts, _default) do
    {:error, invalid("expected a %DSPex.Native.Session{}, got #{inspect(other)}")}
  end

  defp ok({:ok, nil}), do: :ok
  defp ok({:error, _} = error), do: error

  defp bang({:ok, value}), do: value
  defp bang(:ok), do: :ok
  defp bang({:error, error}), do: raise(error)

  defimpl Inspect do
    # Reads only the struct: inspecting never calls into Python or the NIF.
    def inspect(%{id: id, name: name, node: node}, _opts) do
      name = if name in [nil, ""], do: "", else: " " <> Kernel.inspect(name)
      where = if node, do: " on #{node}", else: ""
      "#DSPex.Native.Session<#{id}#{name}#{where}>"
    end
  end
end
