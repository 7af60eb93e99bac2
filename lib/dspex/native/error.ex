defmodule DSPex.Native.Error do
  @moduledoc """
  The error every `DSPex.Native` function returns as `{:error, %DSPex.Native.Error{}}`, and
  the exception the bang variants raise.

  `:reason` is an atom to match on:

  | reason | meaning |
  | --- | --- |
  | `:already_exists` | `create_program/3` with an ID the session has (pass `replace: true`) |
  | `:not_found` | no program with that ID in this session |
  | `:closed` | the session was closed |
  | `:invalid_signature` | a malformed or disallowed DSPy signature |
  | `:invalid_argument` | an argument with no Python form, or of the wrong shape; the message names it |
  | `:no_lm` | executing in a session that has no LM |
  | `:python_error` | Python raised; see `:python_type` and `:traceback` |
  | `:timeout` | the call did not finish within its `:timeout`; its answer is discarded |
  | `:overloaded` | the job queue is full; nothing was queued |
  | `:not_started` | the runtime is not running: no Python environment, a mismatched one, no dspy... |
  | `:internal_error` | a bug in dspex_native itself, caught before it could do harm |
  | `:nodedown` | the session's node is down or unreachable (sessions on other nodes) |

  ## Examples

      iex> {:error, error} = DSPex.Native.Session.delete_program(DSPex.Native.Session.open!(), "nope")
      iex> error.reason
      :not_found
  """

  defexception [:reason, :message, :python_type, :traceback]

  # Every reason, once: the type below is built from this list (a contract test checks the
  # README, the Rust runtime and the Python bridge against it).
  @reasons [
    :already_exists,
    :not_found,
    :closed,
    :invalid_signature,
    :invalid_argument,
    :no_lm,
    :python_error,
    :timeout,
    :overloaded,
    :not_started,
    :internal_error,
    :nodedown
  ]

  @type reason :: unquote(Enum.reduce(Enum.reverse(@reasons), &{:|, [], [&1, &2]}))

  @type t :: %__MODULE__{
          reason: reason(),
          message: String.t(),
          python_type: String.t() | nil,
          traceback: String.t() | nil
        }

  @doc """
  Every reason an error can have.

  ## Examples

      iex> :timeout in DSPex.Native.Error.reasons()
      true
  """
  @spec reasons() :: [reason()]
  def reasons, do: @reasons

  @doc """
  Builds an error.

  ## Examples

      iex> DSPex.Native.Error.new(:timeout, "took too long").reason
      :timeout
  """
  @spec new(reason(), String.t()) :: t()
  def new(reason, message), do: %__MODULE__{reason: reason, message: message}

  @doc false
  # The NIF's `{reason, message, python_type, traceback}`.
  def from_native({reason, message, python_type, traceback}) do
    %__MODULE__{reason: reason, message: message, python_type: python_type, traceback: traceback}
  end

  @impl true
  def message(%__MODULE__{reason: reason, message: message, python_type: nil}),
    do: "(#{reason}) #{message}"

  def message(%__MODULE__{reason: reason, message: message, python_type: type}),
    do: "(#{reason}) #{type}: #{message}"
end

defimpl Inspect, for: DSPex.Native.Error do
  # A Python traceback reads as lines (a heredoc), not as one escaped string, so an error
  # in iex shows where Python failed. The output is still valid Elixir.
  import Inspect.Algebra

  def inspect(%{traceback: traceback} = error, opts) when is_binary(traceback) do
    if String.contains?(traceback, "\n") do
      fields =
        for key <- [:reason, :message, :python_type] do
          concat(["#{key}: ", to_doc(Map.fetch!(error, key), opts)])
        end

      # Forced lines: one field a line, whatever their width.
      body = Enum.map_intersperse(fields ++ [heredoc(traceback)], concat(",", line()), & &1)
      concat(["%DSPex.Native.Error{", nest(concat([line() | body]), 2), line(), "}"])
    else
      Inspect.Any.inspect(error, opts)
    end
  end

  def inspect(error, opts), do: Inspect.Any.inspect(error, opts)

  defp heredoc(text) do
    # A heredoc ends its last line with a newline; a `\` there drops it when the text
    # has none, so the text reads back exactly.
    lines = text |> String.split("\n") |> Enum.map(&escape/1)

    lines =
      case List.pop_at(lines, -1) do
        {"", lines} -> lines
        {last, lines} -> lines ++ [last <> "\\"]
      end

    concat([~S(traceback: """), line() | Enum.intersperse(lines, line())] ++ [line(), ~S(""")])
  end

  defp escape(line) do
    line
    |> String.replace("\\", "\\\\")
    |> String.replace(~S(#{), ~S(\#{))
    |> String.replace(~S("""), ~S(\"""))
  end
end
