defmodule DSPex.Native.Py do
  @moduledoc """
  All of DSPy from Elixir: call any class or function under an allowed root, and hold the
  Python objects that come back as `DSPex.Native.Ref`s owned by a session.

      iex> session = DSPex.Native.Session.open!(lm: {:dummy, %{"" => %{"answer" => "Paris"}}})
      iex> {:ok, qa} = DSPex.Native.Py.call(session, "dspy.Predict", ["question -> answer"])
      iex> qa.type
      "Predict"
      iex> DSPex.Native.Py.call(session, qa, [], question: "Capital of France?")
      {:ok, %{"answer" => "Paris"}}

  A `target` is a dotted path (`"dspy.ChainOfThought"`, `"dspy.evaluate.Evaluate"`) or a
  ref (call the object). Paths are resolved only under the roots of
  `config :dspex_native, importable: ["dspy"]` (the default), one public name at a time;
  anything else is `:invalid_argument` naming the root.

  Results with an Elixir form come back as terms; `dspy.Example` and `dspy.Prediction` as
  string-keyed maps of their fields (as `DSPex.Native.Session.execute/4` returns them);
  anything else as a `%DSPex.Native.Ref{}`. `as: :ref` keeps any result as a ref.

  Arguments may hold refs of the same session and Elixir functions: Python sees a function
  as a callable that runs it in a process tied to the call (like a ReAct tool), so metrics,
  reward functions and tools of any DSPy module can be Elixir. A function gets as many of
  Python's positional arguments as its arity takes, converted like results; what it returns
  is converted like any argument. `:fun_timeout` (ms, default 30 000) bounds each call.

  Options of every function: `:timeout` (ms, default 30 000), `:as`, `:fun_timeout`.
  """

  alias DSPex.Native.{Error, Ref, Requests, Session}

  @typedoc "A dotted path under an allowed root, or a ref to call."
  @type target :: String.t() | Ref.t()

  @doc """
  Calls `target` with positional `args` and keyword `kwargs` (a keyword list or a map).

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> DSPex.Native.Py.call(session, "dspy.Example", [], question: "2 + 2?", answer: "4")
      {:ok, %{"question" => "2 + 2?", "answer" => "4"}}
      iex> {:error, %DSPex.Native.Error{reason: :invalid_argument}} =
      ...>   DSPex.Native.Py.call(session, "os.system", ["id"])
  """
  @spec call(Session.t(), target(), list(), keyword() | map(), keyword()) ::
          {:ok, term()} | {:error, Error.t()}
  def call(session, target, args \\ [], kwargs \\ [], opts \\ []),
    do: Requests.py_call(session, target, args, kwargs, opts)

  @doc "Like `call/5`, but raises `DSPex.Native.Error`."
  @spec call!(Session.t(), target(), list(), keyword() | map(), keyword()) :: term()
  def call!(session, target, args \\ [], kwargs \\ [], opts \\ []),
    do: bang(call(session, target, args, kwargs, opts))

  @doc """
  Calls method `name` of the object `ref` holds.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> example = DSPex.Native.Py.call!(session, "dspy.Example", [], [question: "q", answer: "a"], as: :ref)
      iex> example = DSPex.Native.Py.method!(example, "with_inputs", ["question"], [], as: :ref)
      iex> DSPex.Native.Py.method(example, "inputs")
      {:ok, %{"question" => "q"}}
  """
  @spec method(Ref.t(), String.t(), list(), keyword() | map(), keyword()) ::
          {:ok, term()} | {:error, Error.t()}
  def method(ref, name, args \\ [], kwargs \\ [], opts \\ []),
    do: Requests.py_method(ref, name, args, kwargs, opts)

  @doc "Like `method/5`, but raises `DSPex.Native.Error`."
  @spec method!(Ref.t(), String.t(), list(), keyword() | map(), keyword()) :: term()
  def method!(ref, name, args \\ [], kwargs \\ [], opts \\ []),
    do: bang(method(ref, name, args, kwargs, opts))

  @doc """
  Reads attribute `name` (a public one: names starting with `_` are refused).

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> predict = DSPex.Native.Py.call!(session, "dspy.Predict", ["question -> answer"])
      iex> DSPex.Native.Py.attr(predict, "demos")
      {:ok, []}
  """
  @spec attr(Ref.t(), String.t(), keyword()) :: {:ok, term()} | {:error, Error.t()}
  def attr(ref, name, opts \\ []), do: Requests.py_attr(ref, name, opts)

  @doc "Like `attr/3`, but raises `DSPex.Native.Error`."
  @spec attr!(Ref.t(), String.t(), keyword()) :: term()
  def attr!(ref, name, opts \\ []), do: bang(attr(ref, name, opts))

  @doc """
  Sets attribute `name` to `value` (converted like an argument).

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> predict = DSPex.Native.Py.call!(session, "dspy.Predict", ["question -> answer"])
      iex> DSPex.Native.Py.set_attr(predict, "demos", [%{"question" => "1+1?", "answer" => "2"}])
      :ok
  """
  @spec set_attr(Ref.t(), String.t(), term(), keyword()) :: :ok | {:error, Error.t()}
  def set_attr(ref, name, value, opts \\ []), do: Requests.py_set_attr(ref, name, value, opts)

  @doc "Like `set_attr/4`, but raises `DSPex.Native.Error`."
  @spec set_attr!(Ref.t(), String.t(), term(), keyword()) :: :ok
  def set_attr!(ref, name, value, opts \\ []), do: bang(set_attr(ref, name, value, opts))

  defp bang({:ok, value}), do: value
  defp bang(:ok), do: :ok
  defp bang({:error, error}), do: raise(error)
end
