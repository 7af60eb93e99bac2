defmodule DSPex.Native.Ref do
  @moduledoc """
  A Python object that a session holds for Elixir: a `dspy.Module`, an optimizer, an
  `Evaluate`, anything `DSPex.Native.Py` returns that has no Elixir form.

  A ref belongs to one session: it can be passed to `DSPex.Native.Py` functions and
  `DSPex.Native.Session.put_program/4` of that session only (another session's ref is
  `:invalid_argument`), and it keeps its session alive. Its Python object is freed when
  the BEAM garbage-collects the last copy of the ref, or when its session closes (after
  which every use answers `:closed`). `inspect/1` shows the Python type, never the object.
  """

  alias DSPex.Native.{Args, Error, NIF, Session, Tool}

  @enforce_keys [:session, :id, :type]
  defstruct [:session, :id, :type, :handle]

  @typedoc "A reference to a Python object of one session."
  @type t :: %__MODULE__{
          session: Session.t(),
          id: pos_integer(),
          type: String.t(),
          handle: reference() | nil
        }

  @doc false
  # Does nothing with `term`, after the request that named its refs: until this call the
  # caller still references them, so none is collected (and released) while in use.
  @spec keep_alive(term()) :: :ok
  def keep_alive(_term), do: :ok

  @doc false
  # How `ref` crosses to Python in a call on `session`: `{:"$dspex_ref", id}`, or an error
  # when it belongs to another session.
  def marker(%Session{id: sid, node: node}, %__MODULE__{
        session: %Session{id: sid, node: node},
        id: id
      }),
      do: {:ok, {:"$dspex_ref", id}}

  def marker(%Session{} = session, %__MODULE__{} = ref) do
    {:error,
     Error.new(
       :invalid_argument,
       "#{Kernel.inspect(ref)} belongs to session #{ref.session.id}, not session #{session.id}"
     )}
  end

  @doc false
  # `term` with its parts replaced, outside in: `fun` returns `{:ok, replacement}` for a part
  # it replaces, or `:descend` to go into (proper) lists, tuples and plain maps' values. The
  # one walk for every place refs cross (arguments, results, other nodes).
  def map_terms(term, fun) do
    case fun.(term) do
      {:ok, replacement} -> replacement
      :descend -> descend(term, fun)
    end
  end

  defp descend(list, fun) when is_list(list) do
    # An improper list is left as it is: the NIF refuses it, naming where it is.
    if Args.proper_list?(list), do: Enum.map(list, &map_terms(&1, fun)), else: list
  end

  defp descend(tuple, fun) when is_tuple(tuple),
    do: tuple |> Tuple.to_list() |> Enum.map(&map_terms(&1, fun)) |> List.to_tuple()

  defp descend(map, fun) when is_map(map) and not is_struct(map),
    do: Map.new(map, fn {k, v} -> {k, map_terms(v, fun)} end)

  defp descend(other, _fun), do: other

  @doc false
  # Arguments for Python: refs as markers (of `session` only), functions as handles that
  # Python calls back (a function gets as many of Python's arguments as its arity takes).
  def encode_args(session, args) do
    {:ok, map_terms(args, &encode(session, &1))}
  catch
    {:invalid, error} -> {:error, error}
  end

  defp encode(session, %__MODULE__{} = ref) do
    case marker(session, ref) do
      {:ok, marker} -> {:ok, marker}
      {:error, error} -> throw({:invalid, error})
    end
  end

  defp encode(session, fun) when is_function(fun) do
    {:arity, arity} = Function.info(fun, :arity)

    {:ok,
     Tool.fun_handle(fn args when is_list(args) ->
       args = wrap(session, args) ++ List.duplicate(nil, arity)
       apply(fun, Enum.take(args, arity))
     end)}
  end

  defp encode(_session, _other), do: :descend

  @doc false
  # Every ref marker Python returned in `term` (`{:"$dspex_ref", id, type}`) as a %Ref{},
  # each with a handle whose collection releases the object.
  def wrap(%Session{} = session, term) do
    map_terms(term, fn
      {:"$dspex_ref", id, type} when is_integer(id) and is_binary(type) ->
        {:ok, %__MODULE__{session: session, id: id, type: type, handle: handle(session, id)}}

      _ ->
        :descend
    end)
  end

  # Remote sessions' refs live on the session's node: their handle is made there.
  defp handle(%Session{node: nil, resource: resource}, id), do: NIF.ref_handle(resource, id)
  defp handle(_session, _id), do: nil

  defimpl Inspect do
    def inspect(%{id: id, type: type, session: session}, _opts),
      do: "#DSPex.Native.Ref<#{type} #{id} of session #{session.id}>"
  end
end
