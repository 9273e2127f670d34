"""HL7 v2 with the hospital EHR: the MLLP listener, inbound ADT and orders, ACKs, the raw
message store, and outbound status and result messages through a durable outbox. Its
tables (stored messages, the outbox) are in ris_app.model.hl7.

Modules, one concept each:
  text      MSH-18 character sets, HL7 escape sequences, XPN <-> DICOM PN
  parse     bytes -> Message (segments and fields), the structural gate (hl7apy)
  mapping   THE table: HL7 field <-> model attribute <-> DICOM tag
  ack       ACK / NAK (MSA, ERR) construction
  mllp      MLLP framing, the threaded listener, a client
  reading   values and patients out of a message through the table; the handlers' context
  adt       what ADT messages do to patients
  orders    what ORM/OMI order groups do to orders
  inbound   the dispatch table: message type -> handler
  store     store-then-process pipeline, duplicates, reprocess
  outbound  status (ORM/OMG) and result (ORU) messages, the outbox sender
  stations  station rules for orders that name no station
  listener  the `orthanc-ris hl7-listener` process
  views     API and page for the message store and the outbox
"""
