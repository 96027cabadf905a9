// dmacopy descriptor engine. One descriptor at a time, in ring order:
//   fetch   - read the 32-byte descriptor (tag DESC_TAG);
//   data    - read the source in requests of at most the max read request
//             size (never crossing 4 KiB), up to SLOTS of them outstanding
//             (tags 0..SLOTS-1, handed out and retired in order), into the
//             staging buffer; write what has arrived, in order, in requests
//             of at most the max payload size; the CRC runs over the bytes
//             as they are written;
//   flush   - a zero-length read behind the writes (tag FLUSH_TAG): a
//             non-successful completion means the writes did not land;
//   finish  - write crc, then status (DONE last), then HEAD, COMPLETED and
//             the interrupt.
// Errors write the code into the descriptor's status and halt until
// CTRL.RESET. A reset (CTRL.RESET) or an error abandons outstanding reads:
// their tags stay reserved until their completions arrive, which are then
// dropped, so old data can never land in a new copy.
module dmacopy_engine
  import dmacopy_pkg::*;
#(
    parameter int LANES = 4,
    parameter int BUF_BYTES = 16384,
    parameter int SLOTS = 16
) (
    input logic clk,
    input logic rst,
    input logic soft_reset,

    // registers
    input  logic        ctrl_enable,
    input  logic [63:0] ring_base,
    input  logic [31:0] head,
    input  logic        ring_valid,
    input  logic        descriptors_pending,
    input  logic        halted,
    output logic        engine_active,
    output logic        ev_done,
    output logic        ev_done_irq,
    output logic        ev_error,
    output logic [7:0]  ev_error_code,

    // PCIe core configuration
    input logic        cfg_bus_master_enable,
    input logic [2:0]  cfg_max_payload,       // 128 << code bytes
    input logic [2:0]  cfg_max_read_request,  // 128 << code bytes
    input logic [15:0] cfg_completer_id,

    // completions from the RX parser
    input logic                     cpl_valid,
    input logic                     cpl_last,
    input logic [7:0]               cpl_tag,
    input logic [2:0]               cpl_status,
    input logic                     cpl_poisoned,
    input logic [12:0]              cpl_byte_count,
    input logic [6:0]               cpl_lower_address,
    input logic [10:0]              cpl_length_dw,
    input logic [LANES-1:0]         cpl_lane_payload,
    input logic signed [12:0]       cpl_lane0_index,
    input logic [32*LANES-1:0]      cpl_data,

    // the TLP emitter
    output logic     job_valid,
    output tlp_job_t job,
    input  logic     job_taken,
    input  logic     job_done,      // the last beat of the engine's job went out
    input  logic     crc_valid,     // a beat of copy data went out
    input  logic [32*LANES-1:0] crc_data,
    input  logic [4*LANES-1:0]  crc_mask,

    // the staging buffer's write port
    output logic [LANES-1:0]                            buf_wr_enable,
    output logic [LANES-1:0][$clog2(BUF_BYTES/(4*LANES))-1:0] buf_wr_row,
    output logic [LANES-1:0][31:0]                      buf_wr_data,

    output logic idle  // waits for input only
);

  localparam int BEAT_BYTES = 4 * LANES;
  localparam int LANE_BITS = $clog2(LANES);
  localparam int DW_BITS = $clog2(BUF_BYTES / 4);  // buffer DW index
  localparam int SLOT_BITS = $clog2(SLOTS);
  localparam logic [7:0] DESC_TAG = 8'(SLOTS);
  localparam logic [7:0] FLUSH_TAG = 8'(SLOTS + 1);
  // Reads may run this far ahead of the writes (room for the write side's
  // look-ahead row and DW rounding at both ends).
  localparam int READ_AHEAD_BYTES = BUF_BYTES - 4 * BEAT_BYTES;

  typedef enum logic [3:0] {
    E_IDLE,
    E_FETCH,
    E_FETCH_WAIT,
    E_DATA,
    E_FLUSH,
    E_FLUSH_WAIT,
    E_CRC,
    E_STATUS,
    E_STATUS_WAIT,
    E_ERROR_STATUS,
    E_ERROR_WAIT,
    E_HALTED
  } state_t;

  typedef enum logic [2:0] {
    J_NONE,
    J_OTHER,   // reads: nothing to do when they are out
    J_WRITE,   // data write: advance the write offset
    J_STATUS,  // DONE written: the descriptor is complete
    J_ERROR    // error status written: halt
  } job_kind_t;

  state_t state;
  job_kind_t inflight;  // the engine's job the emitter has taken, until done
  logic [7:0] error_code;

  // the descriptor
  logic [63:0] desc_addr;
  logic [31:0] desc[8];
  wire [63:0] src = {desc[1], desc[0]};
  wire [63:0] dst = {desc[3], desc[2]};
  wire [31:0] len = desc[4];
  wire [31:0] flags = desc[5];
  // flags bit0 is the only one defined; the lower address of a completion
  // matters only for its DW offset
  wire unused_bits = ^{flags[31:1], cpl_lower_address[6:2]};

  // tags: busy until their last completion; stale when abandoned
  logic [SLOTS-1:0] slot_busy, slot_stale, slot_done;
  logic [20:0] slot_end[SLOTS];       // copy offset where the slot's data ends
  logic [DW_BITS-1:0] slot_dw[SLOTS]; // buffer DW of the next completion's data
  logic desc_busy, desc_stale, desc_ok, desc_failed;
  logic [3:0] desc_dw;                // next descriptor DW to fill
  logic flush_busy, flush_stale, flush_ok, flush_failed;
  logic [SLOT_BITS-1:0] issue_slot, retire_slot;
  logic [SLOT_BITS:0] outstanding;

  // the copy
  logic [20:0] read_offset;   // bytes requested
  logic [20:0] avail_offset;  // bytes arrived, in order
  logic [20:0] write_offset;  // bytes written
  logic [12:0] write_piece;   // size of the write in flight
  logic [31:0] crc;
  logic prefer_read;

  wire [12:0] max_payload_bytes = 13'd128 << cfg_max_payload;
  wire [12:0] max_read_bytes = 13'd128 << cfg_max_read_request;
  wire [20:0] len21 = len[20:0];

  // ---- the next read --------------------------------------------------------------
  wire [63:0] read_addr = src + {43'd0, read_offset};
  wire [12:0] read_to_boundary = max_read_bytes - (read_addr[12:0] & (max_read_bytes - 13'd1));
  wire [20:0] read_left = len21 - read_offset;
  wire [12:0] read_piece = read_left < {8'd0, read_to_boundary} ? read_left[12:0] : read_to_boundary;
  wire [21:0] read_ahead = {1'b0, read_offset} + {9'd0, read_piece} - {1'b0, write_offset};
  wire can_read = state == E_DATA && read_offset < len21 && !slot_busy[issue_slot]
                  && !slot_done[issue_slot] && outstanding < (SLOT_BITS + 1)'(SLOTS)
                  && read_ahead <= 22'(READ_AHEAD_BYTES);
  wire [10:0] read_dws = dw_count(read_addr[1:0], read_piece);
  wire [3:0] read_first_be = first_be_of(read_addr[1:0], read_piece);
  wire [3:0] read_last_be = last_be_of(read_addr[1:0], read_piece, read_dws);

  // ---- the next write ---------------------------------------------------------------
  wire [63:0] write_addr = dst + {43'd0, write_offset};
  wire [12:0] write_to_boundary = max_payload_bytes - (write_addr[12:0] & (max_payload_bytes - 13'd1));
  wire [20:0] write_left = len21 - write_offset;
  wire [12:0] write_next = write_left < {8'd0, write_to_boundary} ? write_left[12:0] : write_to_boundary;
  wire can_write = state == E_DATA && inflight == J_NONE && write_offset < len21
                   && avail_offset >= write_offset + {8'd0, write_next};
  wire [10:0] write_dws = dw_count(write_addr[1:0], write_next);

  wire retire = outstanding != '0 && slot_done[retire_slot];

  // ---- jobs for the emitter ---------------------------------------------------------
  tlp_job_t read_job, write_job, word_job;
  job_kind_t offer_kind;
  logic offer;
  logic offer_is_read;
  always_comb begin
    logic [63:0] word_addr;
    logic [31:0] word;
    logic [4:0] header_bytes;
    read_job = mem_request(1'b0, cfg_completer_id, {{(8 - SLOT_BITS) {1'b0}}, issue_slot},
                           {read_addr[63:2], 2'b00}, read_dws, read_first_be, read_last_be);

    write_job = mem_request(1'b1, cfg_completer_id, 8'd0, {write_addr[63:2], 2'b00}, write_dws,
                            first_be_of(write_addr[1:0], write_next),
                            last_be_of(write_addr[1:0], write_next, write_dws));
    header_bytes = write_job.hdr_4dw ? 5'd16 : 5'd12;
    write_job.payload = PAY_BUF;
    // stream byte q of the TLP is buffer byte (q + buf_offset)
    write_job.buf_offset = 16'(src + {43'd0, write_offset} - {62'd0, write_addr[1:0]}
                               - {59'd0, header_bytes});
    write_job.crc_first = {8'd0, header_bytes} + {11'd0, write_addr[1:0]};
    write_job.crc_end = write_job.crc_first + write_next;

    // descriptor fetch, flush read, crc and status writes
    word_addr = desc_addr;
    word = 32'd0;
    case (state)
      E_CRC: begin
        word_addr = desc_addr + 64'd28;
        word = ~crc;
      end
      E_STATUS: begin
        word_addr = desc_addr + 64'd24;
        word = 32'h1;  // DONE
      end
      default: begin
        word_addr = desc_addr + 64'd24;
        word = {16'd0, error_code, 8'd0};
      end
    endcase
    word_job = mem_request(1'b1, cfg_completer_id, 8'd0, word_addr, 11'd1, 4'hF, 4'h0);
    word_job.payload = PAY_WORD;
    word_job.word = word;
    if (state == E_FETCH)
      word_job = mem_request(1'b0, cfg_completer_id, DESC_TAG, desc_addr, 11'd8, 4'hF, 4'hF);
    if (state == E_FLUSH)  // zero-length read of the DW holding the last byte written
      word_job = mem_request(1'b0, cfg_completer_id, FLUSH_TAG,
                             {(dst[63:0] + {32'd0, len} - 64'd1) & ~64'd3}, 11'd1, 4'h0, 4'h0);

    offer = 1'b0;
    offer_is_read = 1'b0;
    offer_kind = J_OTHER;
    job = word_job;
    if (cfg_bus_master_enable && inflight == J_NONE) begin
      case (state)
        E_FETCH: offer = !desc_busy;
        E_FLUSH: offer = !flush_busy;
        E_CRC: offer = 1'b1;
        E_STATUS: begin
          offer = 1'b1;
          offer_kind = J_STATUS;
        end
        E_ERROR_STATUS: begin
          offer = 1'b1;
          offer_kind = J_ERROR;
        end
        E_DATA: begin
          if (can_read && (prefer_read || !can_write)) begin
            offer = 1'b1;
            offer_is_read = 1'b1;
            job = read_job;
          end else if (can_write) begin
            offer = 1'b1;
            offer_kind = J_WRITE;
            job = write_job;
          end
        end
        default: ;
      endcase
    end
  end
  assign job_valid = offer;

  // ---- completions --------------------------------------------------------------------
  wire [SLOT_BITS-1:0] cpl_slot = cpl_tag[SLOT_BITS-1:0];
  wire cpl_is_data = cpl_tag < 8'(SLOTS) && slot_busy[cpl_slot];
  wire cpl_is_desc = cpl_tag == DESC_TAG && desc_busy;
  wire cpl_is_flush = cpl_tag == FLUSH_TAG && flush_busy;
  wire cpl_good = cpl_status == CPL_SC && !cpl_poisoned;
  // the request is finished: any error, or the last bytes it owed
  wire [12:0] cpl_bytes = {cpl_length_dw, 2'b00} - {11'd0, cpl_lower_address[1:0]};
  wire cpl_final = !cpl_good || cpl_length_dw == 11'd0 || cpl_byte_count <= cpl_bytes;

  // data into the buffer: lane l of the beat is buffer DW (first + l)
  wire [DW_BITS-1:0] cpl_first_dw = slot_dw[cpl_slot] + DW_BITS'(cpl_lane0_index);
  logic [LANES-1:0][LANE_BITS-1:0] unused_dw_lane;  // the lane is m by construction
  always_comb begin
    for (int m = 0; m < LANES; m++) begin
      logic [LANE_BITS-1:0] l;
      logic [DW_BITS-1:0] dw;
      l = LANE_BITS'(m) - cpl_first_dw[LANE_BITS-1:0];
      dw = cpl_first_dw + DW_BITS'(l);
      buf_wr_enable[m] = cpl_valid && cpl_is_data && !slot_stale[cpl_slot] && cpl_good
                         && cpl_lane_payload[l];
      buf_wr_row[m] = dw[DW_BITS-1:LANE_BITS];
      unused_dw_lane[m] = dw[LANE_BITS-1:0];
      buf_wr_data[m] = cpl_data[32*l+:32];
    end
  end

  // ---- events ---------------------------------------------------------------------------
  wire start = state == E_IDLE && ctrl_enable && !halted && descriptors_pending
               && cfg_bus_master_enable;
  assign ev_done = job_done && inflight == J_STATUS;
  assign ev_done_irq = flags[0];
  assign ev_error = (start && !ring_valid) || (job_done && inflight == J_ERROR);
  assign ev_error_code = (job_done && inflight == J_ERROR) ? error_code : ERR_BAD_RING;
  assign engine_active = state != E_IDLE && state != E_HALTED;

  wire data_error = state == E_DATA && cpl_valid && cpl_last && cpl_is_data
                    && !slot_stale[cpl_slot] && !cpl_good;
  wire abandon = data_error || soft_reset;

  // tag bookkeeping for this cycle
  wire issue = job_taken && offer_is_read;
  wire data_final = cpl_valid && cpl_is_data && cpl_last && cpl_final;
  wire [SLOTS-1:0] issue_mask = issue ? SLOTS'(1) << issue_slot : '0;
  wire [SLOTS-1:0] freed_mask = data_final ? SLOTS'(1) << cpl_slot : '0;
  wire [SLOTS-1:0] slot_busy_next = (slot_busy | issue_mask) & ~freed_mask;
  wire [SLOTS-1:0] done_mask = (data_final && !slot_stale[cpl_slot] && cpl_good) ? freed_mask : '0;
  wire [SLOTS-1:0] retire_mask = retire ? SLOTS'(1) << retire_slot : '0;
  wire [SLOTS-1:0] slot_done_next = (slot_done | done_mask) & ~retire_mask;
  wire desc_freed = cpl_valid && cpl_is_desc && cpl_last && cpl_final;
  wire flush_freed = cpl_valid && cpl_is_flush && cpl_last;

  always_ff @(posedge clk) begin
    if (rst) begin
      state <= E_IDLE;
      inflight <= J_NONE;
      error_code <= ERR_NONE;
      desc_addr <= '0;
      for (int i = 0; i < 8; i++) desc[i] <= '0;
      slot_busy <= '0;
      slot_stale <= '0;
      slot_done <= '0;
      for (int s = 0; s < SLOTS; s++) begin
        slot_end[s] <= '0;
        slot_dw[s] <= '0;
      end
      desc_busy <= 1'b0;
      desc_stale <= 1'b0;
      desc_ok <= 1'b0;
      desc_failed <= 1'b0;
      desc_dw <= '0;
      flush_busy <= 1'b0;
      flush_stale <= 1'b0;
      flush_ok <= 1'b0;
      flush_failed <= 1'b0;
      issue_slot <= '0;
      retire_slot <= '0;
      outstanding <= '0;
      read_offset <= '0;
      avail_offset <= '0;
      write_offset <= '0;
      write_piece <= '0;
      crc <= '1;
      prefer_read <= 1'b1;
    end else begin
      // ---- tags (completions of abandoned reads free their tag too) ----
      slot_busy <= slot_busy_next;
      slot_stale <= abandon ? slot_busy_next : slot_stale & ~freed_mask;
      slot_done <= abandon ? '0 : slot_done_next;
      if (cpl_valid && cpl_is_data && cpl_last)
        slot_dw[cpl_slot] <= slot_dw[cpl_slot] + DW_BITS'(cpl_length_dw);
      if (cpl_valid && cpl_is_desc) begin
        for (int l = 0; l < LANES; l++) begin
          logic signed [12:0] index;
          index = 13'(desc_dw) + cpl_lane0_index + 13'(l);
          if (cpl_lane_payload[l] && index >= 0 && index < 8 && !desc_stale)
            desc[index[2:0]] <= cpl_data[32*l+:32];
        end
        if (cpl_last) begin
          desc_dw <= desc_dw + cpl_length_dw[3:0];
          if (cpl_final) begin
            desc_busy <= 1'b0;
            desc_stale <= 1'b0;  // (also when abandoned this very cycle: it is free)
            if (!desc_stale && !abandon) begin
              desc_ok <= cpl_good;
              desc_failed <= !cpl_good;
            end
          end
        end
      end
      if (cpl_valid && cpl_is_flush && cpl_last) begin
        flush_busy <= 1'b0;
        flush_stale <= 1'b0;
        if (!flush_stale && !abandon) begin
          flush_ok <= cpl_good;
          flush_failed <= !cpl_good;
        end
      end

      // ---- retire data in order ----
      if (retire) begin
        avail_offset <= slot_end[retire_slot];
        retire_slot <= retire_slot + 1'b1;
      end
      outstanding <= outstanding + {{SLOT_BITS{1'b0}}, issue} - {{SLOT_BITS{1'b0}}, retire};

      if (crc_valid && inflight == J_WRITE) crc <= crc32_update(crc, 128'(crc_data), 16'(crc_mask));
      // (a job may be taken in the cycle the previous one, a read, is done)
      if (job_done) begin
        inflight <= J_NONE;
        if (inflight == J_WRITE) write_offset <= write_offset + {8'd0, write_piece};
      end

      // ---- the emitter took a job ----
      if (job_taken) begin
        inflight <= offer_is_read ? J_NONE : offer_kind;
        prefer_read <= !offer_is_read;
        if (offer_is_read) begin
          slot_end[issue_slot] <= read_offset + {8'd0, read_piece};
          slot_dw[issue_slot] <= read_addr[DW_BITS+1:2];
          issue_slot <= issue_slot + 1'b1;
          read_offset <= read_offset + {8'd0, read_piece};
        end
        if (offer_kind == J_WRITE) write_piece <= write_next;
        case (state)
          E_FETCH: begin
            desc_busy <= 1'b1;
            desc_dw <= '0;
            desc_ok <= 1'b0;
            desc_failed <= 1'b0;
            state <= E_FETCH_WAIT;
          end
          E_FLUSH: begin
            flush_busy <= 1'b1;
            flush_ok <= 1'b0;
            flush_failed <= 1'b0;
            state <= E_FLUSH_WAIT;
          end
          E_CRC: state <= E_STATUS;
          E_STATUS: state <= E_STATUS_WAIT;
          E_ERROR_STATUS: state <= E_ERROR_WAIT;
          default: ;
        endcase
      end
      // ---- the descriptor's progress ----
      case (state)
        E_IDLE:
        if (start && ring_valid) begin
          desc_addr <= ring_base + {27'd0, head, 5'd0};
          state <= E_FETCH;
        end
        E_FETCH_WAIT:
        if (desc_failed) begin
          error_code <= ERR_DMA_READ;
          state <= E_ERROR_STATUS;
        end else if (desc_ok) begin
          if (len == 32'd0 || len > MAX_COPY_BYTES) begin
            error_code <= ERR_BAD_LENGTH;
            state <= E_ERROR_STATUS;
          end else begin
            read_offset <= '0;
            avail_offset <= '0;
            write_offset <= '0;
            crc <= '1;
            state <= E_DATA;
          end
        end
        E_DATA:
        if (data_error) begin
          error_code <= ERR_DMA_READ;
          state <= E_ERROR_STATUS;
        end else if (write_offset == len21 && inflight == J_NONE) begin
          state <= E_FLUSH;
        end
        E_FLUSH_WAIT:
        if (flush_failed) begin
          error_code <= ERR_DMA_WRITE;
          state <= E_ERROR_STATUS;
        end else if (flush_ok) begin
          state <= E_CRC;
        end
        E_STATUS_WAIT: if (job_done && inflight == J_STATUS) state <= E_IDLE;
        E_ERROR_WAIT: if (job_done && inflight == J_ERROR) state <= E_HALTED;
        default: ;
      endcase

      // An error or a reset abandons the copy's outstanding reads (a read
      // issued in this very cycle included).
      if (abandon) begin
        outstanding <= '0;
        retire_slot <= issue_slot + {{(SLOT_BITS - 1) {1'b0}}, issue};
      end

      // CTRL.RESET: back to idle; outstanding reads become stale. A TLP the
      // emitter is sending still goes out whole, but is forgotten here.
      if (soft_reset) begin
        state <= E_IDLE;
        inflight <= J_NONE;
        error_code <= ERR_NONE;
        desc_stale <= (desc_busy || (job_taken && state == E_FETCH)) && !desc_freed;
        flush_stale <= (flush_busy || (job_taken && state == E_FLUSH)) && !flush_freed;
        desc_ok <= 1'b0;
        desc_failed <= 1'b0;
        flush_ok <= 1'b0;
        flush_failed <= 1'b0;
      end
    end
  end

  // Nothing to do until a completion, a register write or a configuration
  // change arrives (the adapter may then sleep on its socket).
  assign idle = !offer && inflight == J_NONE && !retire
                && !(state == E_IDLE && start)
                && !(state == E_DATA && write_offset == len21)
                && !(state == E_FETCH_WAIT && (desc_ok || desc_failed))
                && !(state == E_FLUSH_WAIT && (flush_ok || flush_failed));

endmodule
