// The C++ main of a Verilator simulator: clocks the model and writes
// waveforms. Everything else (command line, the bridge, the adapter) is the
// C library's. Compiled once per design with
//   TLPB_RTL_TOP         the Verilated class, e.g. Vdmacopy_sim_top
//   TLPB_RTL_TOP_HEADER  its header, e.g. "Vdmacopy_sim_top.h"
//   TLPB_RTL_DPI_HEADER  the generated DPI header, e.g. "Vdmacopy_sim_top__Dpi.h"
//   TLPB_RTL_TRACE_FST   1 for FST waveforms (a --trace-fst build), else VCD
#include <cstdio>
#include <cstdint>
#include <memory>
#include <string>

#include <verilated.h>
#include TLPB_RTL_TOP_HEADER
#include TLPB_RTL_DPI_HEADER

#include "tlpb_rtl.h"
#include "tlpb_rtl_dpi.h"  // must agree with the generated DPI header

#if VM_TRACE
#if TLPB_RTL_TRACE_FST
#include <verilated_fst_c.h>
using TraceFile = VerilatedFstC;
#else
#include <verilated_vcd_c.h>
using TraceFile = VerilatedVcdC;
#endif
#endif

namespace {

#if VM_TRACE
// Waveforms: the whole run into one file, or a window. For a window the
// trace goes into two part files in turn, each covering `window` cycles; at
// the first trigger it goes on for window/8 more cycles, then the older
// part and the current one are joined into the file (VCD: the second part's
// header is dropped; the signal codes are the same). The file holds at most
// about 2 * window + window / 8 cycles, whatever the run's length.
class Tracer {
  public:
    Tracer(TLPB_RTL_TOP *top, const tlpb_rtl_sim_options &o) : path_(o.trace_path),
        window_(o.trace_window_cycles) {
        top->trace(&file_, 99);
        if (window_) {
            parts_[0] = path_ + ".part0";
            parts_[1] = path_ + ".part1";
            file_.open(parts_[0].c_str());
        } else {
            file_.open(path_.c_str());
        }
        if (!file_.isOpen()) {
            tlpb_rtl_sim_log(0, "cannot open waveform file %s", path_.c_str());
            done_ = true;
            return;
        }
        if (window_)
            tlpb_rtl_sim_log(2, "waveforms: the %llu cycles before the first trigger go to %s",
                             (unsigned long long)window_, path_.c_str());
        else
            tlpb_rtl_sim_log(2, "waveforms: the whole run goes to %s", path_.c_str());
    }

    void dump(uint64_t time_ps) {
        if (!done_)
            file_.dump(time_ps);
    }

    void after_cycle(uint64_t cycle, bool trigger) {
        if (done_ || !window_)
            return;
        if (trigger && !triggered_) {
            triggered_ = true;
            trigger_cycle_ = cycle;
            tlpb_rtl_sim_log(2, "waveform trigger at cycle %llu", (unsigned long long)cycle);
        }
        if (triggered_) {
            if (cycle - trigger_cycle_ >= window_ / 8 + 1)
                finish_window();
            return;
        }
        if (cycle - part_start_ >= window_) {
            file_.close();
            current_ ^= 1;
            have_previous_ = true;
            part_start_ = cycle;
            file_.open(parts_[current_].c_str());
        }
    }

    void finish() {
        if (done_)
            return;
        if (window_) {
            if (!triggered_)
                tlpb_rtl_sim_log(2, "no waveform trigger: keeping the last cycles of the run");
            finish_window();
        } else {
            file_.close();
            tlpb_rtl_sim_log(2, "waveforms written to %s", path_.c_str());
        }
    }

  private:
    void finish_window() {
        file_.close();
        done_ = true;
        std::FILE *out = std::fopen(path_.c_str(), "wb");
        bool ok = out != nullptr;
        if (have_previous_)
            ok = ok && append(out, parts_[current_ ^ 1], false);
        ok = ok && append(out, parts_[current_], have_previous_);
        if (out && std::fclose(out) != 0)
            ok = false;
        std::remove(parts_[0].c_str());
        std::remove(parts_[1].c_str());
        if (ok && triggered_)
            tlpb_rtl_sim_log(2, "waveform window written to %s (trigger at cycle %llu)",
                             path_.c_str(), (unsigned long long)trigger_cycle_);
        else if (ok)
            tlpb_rtl_sim_log(2, "waveform window written to %s (the last cycles of the run)",
                             path_.c_str());
        else
            tlpb_rtl_sim_log(0, "could not write the waveform window to %s", path_.c_str());
    }

    // Append a part; skip_header drops everything up to $enddefinitions.
    static bool append(std::FILE *out, const std::string &part, bool skip_header) {
        std::FILE *in = std::fopen(part.c_str(), "rb");
        if (!in)
            return false;
        std::string text;
        char buf[65536];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof(buf), in)) > 0)
            text.append(buf, n);
        std::fclose(in);
        size_t from = 0;
        if (skip_header) {
            size_t at = text.find("$enddefinitions");
            if (at == std::string::npos)
                return false;
            size_t eol = text.find('\n', at);
            from = eol == std::string::npos ? text.size() : eol + 1;
        }
        return std::fwrite(text.data() + from, 1, text.size() - from, out) == text.size() - from;
    }

    TraceFile file_;
    std::string path_;
    std::string parts_[2];
    uint64_t window_;
    uint64_t part_start_ = 0;
    uint64_t trigger_cycle_ = 0;
    int current_ = 0;
    bool have_previous_ = false;
    bool triggered_ = false;
    bool done_ = false;
};
#endif

}  // namespace

int main(int argc, char **argv) {
#if VM_TRACE && TLPB_RTL_TRACE_FST
    tlpb_rtl_sim_set_waveforms(TLPB_RTL_WAVEFORMS_FST);
#elif VM_TRACE
    tlpb_rtl_sim_set_waveforms(TLPB_RTL_WAVEFORMS_VCD);
#endif
    tlpb_rtl_sim_options opts;
    int rc = tlpb_rtl_sim_start(argc, argv, &opts);
    if (rc >= 0)
        return rc;

    const std::unique_ptr<VerilatedContext> context{new VerilatedContext};
    context->debug(0);
#if VM_TRACE
    if (opts.trace_path)
        context->traceEverOn(true);
#endif
    const std::unique_ptr<TLPB_RTL_TOP> top{new TLPB_RTL_TOP{context.get(), "top"}};
#if VM_TRACE
    std::unique_ptr<Tracer> tracer;
    if (opts.trace_path)
        tracer.reset(new Tracer(top.get(), opts));
#endif

    // Waveform time in picoseconds: the device time of each edge (its cycle
    // times the period, idle jumps included), the time the stamps carry.
#if VM_TRACE
    const uint64_t period_ps = opts.clock_period_ps;
#endif
    uint64_t cycle = 0;
    top->clk = 0;
    top->eval();
    while (tlpb_rtl_sim_running()) {
        top->clk = 1;
        top->eval();  // the adapter's DPI call runs on this edge
#if VM_TRACE
        const uint64_t edge_ps = tlpb_rtl_sim_edge_time_ps();
        if (tracer)
            tracer->dump(edge_ps);
#endif
        top->clk = 0;
        top->eval();
#if VM_TRACE
        if (tracer) {
            tracer->dump(edge_ps + period_ps / 2);
            tracer->after_cycle(cycle, tlpb_rtl_sim_take_trigger());
        }
#endif
        cycle++;
    }
    top->final();
#if VM_TRACE
    if (tracer)
        tracer->finish();
#endif
    return tlpb_rtl_sim_finish();
}
