#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "headachemd/sandbox/sandbox.hpp"

namespace headachemd::sandbox {

background_server::background_server(options opts)
    : io_(std::make_unique<boost::asio::io_context>()),
      server_(std::make_unique<server>(*io_, std::move(opts))) {
    server_->start();
    thread_ = std::make_unique<std::thread>([this] { io_->run(); });
}

background_server::~background_server() {
    // stop() closes the listener and the connections on the server's own
    // thread; then the loop is told to end.
    boost::asio::post(*io_, [this] { server_->stop(); });
    io_->stop();
    thread_->join();
    server_.reset();
}

}  // namespace headachemd::sandbox
