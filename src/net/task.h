#pragma once
// Lazy coroutine tasks. `co_await task` starts the task at once on the caller's thread; a task
// that finishes without suspending hands control straight back, so a loop of such awaits runs at
// constant stack depth even where the compiler does not turn symmetric transfer into a tail call
// (debug and sanitizer builds). `spawn` starts a detached task that frees itself when it ends.
#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

#include "net/frame_pool.h"

namespace usher::net {

template <typename T>
class Task;

namespace detail {

struct PromiseBase {
  std::coroutine_handle<> continuation;
  bool detached = false;
  bool awaiter_on_stack = false;  // the awaiting frame is inside await_suspend, below us
  bool completed = false;

  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* frame, std::size_t size) noexcept { free_frame(frame, size); }

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <typename P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> self) noexcept {
      PromiseBase& promise = self.promise();
      promise.completed = true;
      if (promise.detached) {
        self.destroy();
        return std::noop_coroutine();
      }
      if (promise.awaiter_on_stack || !promise.continuation) return std::noop_coroutine();
      return promise.continuation;
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
  // Exceptions never cross the event loop: a task that throws ends the process loudly.
  void unhandled_exception() noexcept { std::terminate(); }
};

template <typename T>
struct Promise : PromiseBase {
  std::optional<T> value;  // optional: T need not be default-constructible (Expected<T>)
  Task<T> get_return_object() noexcept;
  void return_value(T v) noexcept { value.emplace(std::move(v)); }
};

template <>
struct Promise<void> : PromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
};

}  // namespace detail

template <typename T = void>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  explicit Task(Handle h) : handle_(h) {}
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&&) = delete;
  ~Task() {
    if (handle_) handle_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> caller) noexcept {
    auto& promise = handle_.promise();
    promise.continuation = caller;
    promise.awaiter_on_stack = true;
    handle_.resume();
    if (promise.completed) return false;  // finished inline: the caller just continues
    promise.awaiter_on_stack = false;     // suspended: whoever resumes it resumes us after
    return true;
  }
  T await_resume() {
    if constexpr (!std::is_void_v<T>) return std::move(*handle_.promise().value);
  }

  // Starts the task detached: it owns itself from here on.
  friend void spawn(Task<void> task);

 private:
  Handle handle_;
};

namespace detail {
template <typename T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace detail

inline void spawn(Task<void> task) {
  auto handle = std::exchange(task.handle_, {});
  handle.promise().detached = true;
  handle.resume();
}

}  // namespace usher::net
